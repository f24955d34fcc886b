# Two entry points for a fresh clone: `make reproduce` and `make test`.
# Both create .venv with the pinned versions (constraints.txt) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: reproduce test env reference clean-results

$(BIN)/snakemake: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: on a machine with its CPU wheel on disk, this takes it instead of a CUDA download.
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
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
