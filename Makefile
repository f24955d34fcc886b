# Two entry points for a fresh clone: `make reproduce` and `make test`.
# Both create .venv with the pinned versions (constraints.txt) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
comma := ,
CORES ?= all

.PHONY: reproduce test test-cluster env reference clean-results

# CPU_KERNELS=avx2 (`make reproduce CPU_KERNELS=avx2`): torch's CPU kernels (ATen's, oneDNN's, MKL's)
# and NumPy's use AVX2 at most, as on the host the committed reference was made on. On an AVX-512 host
# the results are then byte-identical to the reference, the authors' ResNet rows included; the run is
# slower there (README: Across CPUs). pfami/reproduction.py's LOWERED_KERNELS names the same variables.
ifeq ($(CPU_KERNELS),avx2)
export ATEN_CPU_CAPABILITY := avx2
export ONEDNN_MAX_CPU_ISA := AVX2
export MKL_ENABLE_INSTRUCTIONS := AVX2
export NPY_DISABLE_CPU_FEATURES := X86_V4 AVX512_ICL AVX512_SPR
else ifneq ($(CPU_KERNELS),)
$(error CPU_KERNELS=$(CPU_KERNELS): only avx2 is known; leave it out for the CPU's own kernels)
endif

# uv (pinned in constraints.txt) installs the same pinned versions in about half of pip's time. It
# reads neither pip's configuration nor PIP_* variables, so the folders pip takes wheels from (where a
# machine keeps its torch CPU wheel) are handed to it.
PIP_WHEEL_FOLDERS := $(sort $(wildcard $(PIP_FIND_LINKS) $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)))
UV_INSTALL := $(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt \
	$(foreach folder,$(PIP_WHEEL_FOLDERS),--find-links $(folder))

# Bytecode. Compiling all of the environment's 15,000 modules (uv's --compile-bytecode) was most of
# set-up's CPU (about 45 CPU-s); the steps import about 4,500 of them. So Python writes the bytecode of
# what it imports, its default: PYTHONDONTWRITEBYTECODE, which some machines set, is not passed on to
# make's commands. And `make env` imports what the steps and Snakemake import, once, in two processes
# (torch's side, the rest), so that the first jobs do not each compile torch, and a run outside make starts
# as fast where that variable is set (a job would otherwise compile torch and diffusers afresh: 10 s
# instead of 3). A module these lists miss is compiled once, by the first command make runs that imports it.
unexport PYTHONDONTWRITEBYTECODE
STEP_IMPORTS_TORCH := pfami.models.ddpm pfami.models.ldm pfami.models.vae pfami.likelihood opacus
STEP_IMPORTS_REST := sklearn.metrics sklearn.svm sklearn.linear_model sklearn.model_selection scipy.stats \
	matplotlib.pyplot matplotlib.backends.backend_agg pfami.config dvc.cli snakemake.cli \
	snakemake.report.html_reporter snakemake_executor_plugin_slurm smart_open yte dpath argparse_dataclass

$(BIN)/snakemake: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt uv
	# torch is named first: on a machine with its CPU wheel on disk, this takes it instead of a CUDA download.
	$(UV_INSTALL) torch -e '.[test]'
	$(BIN)/python -c 'import $(subst $() ,$(comma),$(STEP_IMPORTS_TORCH))' & torch_side=$$!; \
		$(BIN)/python -c 'import $(subst $() ,$(comma),$(STEP_IMPORTS_REST))' && wait $$torch_side
	touch $@

env: $(BIN)/snakemake

reproduce: env
	$(BIN)/snakemake --cores $(CORES)

# Make the committed reference results from this run's metrics, on purpose, after a change that is
# meant to change them; then commit results/reference_metrics.json.
reference: reproduce
	$(BIN)/python scripts/verify_reproduction.py --config config/config.yaml --write-reference

# The SLURM tests need a local SLURM (Debian's slurm-wlm and munge): installed where we may, while
# .venv is built (both wait mostly on downloads and disk), its output in .slurm-install.log.
test:
	@$(MAKE) --no-print-directory -j2 env test-cluster
	$(BIN)/python -m pytest -q

test-cluster:
	@if [ "$$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then \
		bash .ci/install-slurm.sh > .slurm-install.log 2>&1 || { cat .slurm-install.log; exit 1; }; \
		tail -n 1 .slurm-install.log; \
	else echo "make test: not root and no sudo, so SLURM is not installed and the SLURM tests will be skipped"; fi

clean-results:
	rm -rf results/*/ results/summary.md results/summary.csv .snakemake
