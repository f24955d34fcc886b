# Config validation, experiment expansion and the helpers every rule uses.

import json
import sys

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
# Experiments whose models can generate images with the DDPM / DDIM / PNDM samplers.
DIFFUSION_EXPERIMENTS = [name for name in EXPERIMENTS if config["experiments"][name]["model"]["family"] == "ddpm"]
# The interpreter Snakemake runs under, so rules work without an activated environment.
PYTHON = sys.executable


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    role="target|shadow|reference",
    model="target|shadow|reference",
    records="target|shadow",


def experiment(wildcards):
    return config["experiments"][wildcards.experiment]


def section(name):
    """A rule parameter: the named config section of the rule's experiment, as JSON."""
    return lambda wildcards: json.dumps(experiment(wildcards)[name])


def attacks_of(wildcards):
    return list(experiment(wildcards)["attacks"])
