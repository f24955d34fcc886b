# Config validation, experiment expansion and the helpers every rule uses.

import json
import os
import sys
from pathlib import Path

from snakemake.utils import validate

from pfami.config import ConfigError, check_config, describe_experiment
from pfami.data import GIVEN_SPLIT_KEYS

try:
    check_config(config, workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as error:
    sys.exit(f"config error: {error}")
# Fills in the schema's defaults.
validate(config, "../schemas/config.schema.yaml")

EXPERIMENTS = list(config["experiments"])
ROLES = ["target", "shadow", "reference"]
ATTACKED_ROLES = ["target", "shadow"]
FIGURES = ["roc", "fluctuation", "score_distributions", "training_loss"]
# Jobs call `python`: make that the interpreter Snakemake runs under, so the rules work
# without an activated environment (jobs inherit this PATH, on SLURM too).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
# The software of every rule, for `--software-deployment-method conda`; the supported way is
# the pinned virtual environment the Makefile builds.
SOFTWARE_ENV = "../envs/pfami.yaml"
# Experiments whose models can generate images with the DDPM / DDIM / PNDM samplers.
DIFFUSION_EXPERIMENTS = [name for name in EXPERIMENTS if config["experiments"][name]["model"]["family"] == "ddpm"]


def experiment(wildcards):
    return config["experiments"][wildcards.experiment]


def section(name):
    """The named config section of a job's experiment, as JSON (for params)."""
    return lambda wildcards: json.dumps(experiment(wildcards)[name])


def attacks_of(wildcards):
    return list(experiment(wildcards)["attacks"])
