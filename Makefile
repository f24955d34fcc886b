# Two entry points for a fresh clone: `make reproduce` and `make test`.
# Both create .venv with the pinned versions (constraints.txt) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: reproduce test env reference clean-results

# uv (pinned in constraints.txt) installs the same pinned versions in about half of pip's time. It
# reads neither pip's configuration nor PIP_* variables, so the folders pip takes wheels from (where a
# machine keeps its torch CPU wheel) are handed to it. --compile-bytecode: where PYTHONDONTWRITEBYTECODE
# is set, every job would otherwise compile torch and diffusers afresh when it starts (10 s instead of 3).
PIP_WHEEL_FOLDERS := $(sort $(wildcard $(PIP_FIND_LINKS) $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)))
UV_INSTALL := $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c constraints.txt \
	$(foreach folder,$(PIP_WHEEL_FOLDERS),--find-links $(folder))

$(BIN)/snakemake: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt uv
	# torch is named first: on a machine with its CPU wheel on disk, this takes it instead of a CUDA download.
	$(UV_INSTALL) torch -e '.[test]'
	touch $@

env: $(BIN)/snakemake

reproduce: env
	$(BIN)/snakemake --cores $(CORES)

# Make the committed reference results from this run's metrics, on purpose, after a change that is
# meant to change them; then commit results/reference_metrics.json.
reference: reproduce
	$(BIN)/python scripts/verify_reproduction.py --config config/config.yaml --write-reference

# The SLURM tests need a local SLURM (Debian's slurm-wlm and munge): installed here when we may.
test: env
	@if [ "$$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then bash .ci/install-slurm.sh; \
	else echo "make test: not root and no sudo, so SLURM is not installed and the SLURM tests will be skipped"; fi
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf results/*/ results/summary.md results/summary.csv .snakemake
