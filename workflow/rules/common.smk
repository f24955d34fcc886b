# Config validation, experiment expansion and the helpers every rule uses.

import json
import os
import re
import sys
import time
from pathlib import Path

from snakemake.utils import validate

from pfami.cli import failed_job_errors
from pfami.config import ConfigError, check_config, describe_experiment, evaluation_delta
from pfami.data import (ATTACKED_ROLES, GIVEN_FOLDER_KEYS, GIVEN_SPLIT_KEYS, ROLES, reference_role, trained_roles,
                        with_given_folders)
from pfami.models import DIFFUSION_FAMILIES
from pfami.privacy_study import study_experiments
from pfami.versioning import AUDIT_DOCUMENT, AUDIT_DOCUMENT_BODY, FIGURES, VERDICT
from pfami.versioning import AUDIT_FIGURES as AUDIT_FIGURE_NAMES

try:
    check_config(config, workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as error:
    sys.exit(f"config error: {error}")
# Fills in the schema's defaults.
validate(config, "../schemas/config.schema.yaml")

EXPERIMENTS = list(config["experiments"])
# The privacy study's experiments (config section `privacy`, pfami/privacy_study.py): built by the rules
# like any experiment, but only for the `privacy` target. SHARED_MODELS: {experiment: {role: the
# experiment whose model that role uses}} (the non-private roles of a DP experiment).
PRIVACY_EXPERIMENTS, SHARED_MODELS = study_experiments(config)
PRIVACY_BASES = [config["privacy"]["experiment"]] if PRIVACY_EXPERIMENTS else []
ALL_EXPERIMENTS = {**config["experiments"], **PRIVACY_EXPERIMENTS}
EXPERIMENT_PATTERN = "|".join(EXPERIMENTS + [re.escape(name) for name in PRIVACY_EXPERIMENTS])
# The committed results that the reproduction verdict compares a run with (rule verify_reproduction).
REFERENCE_RESULTS = config["reference_results"]
# When this Snakemake started: the verdict is printed at the end only if this run wrote it.
STARTED = time.time()
# Experiments whose models sample with the DDPM / DDIM / PNDM schedulers: their results block says so.
DIFFUSION_EXPERIMENTS = [name for name in EXPERIMENTS if config["experiments"][name]["model"]["family"] in DIFFUSION_FAMILIES]
# Jobs call `python`: make that the interpreter Snakemake runs under, so the rules work
# without an activated environment (jobs inherit this PATH, on SLURM too).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
# The software of every rule, for `--software-deployment-method conda`; the supported way is
# the pinned virtual environment the Makefile builds.
SOFTWARE_ENV = "../envs/pfami.yaml"


# Members and non-members shown in each experiment's figure of the most exposed records.
EXPOSED_RECORDS_SHOWN = 8
# The figures of the audit's document (rule audit_document), per experiment.
AUDIT_FIGURES = {
    name: {figure: f"results/{name}/figures/{figure}.png" for figure in AUDIT_FIGURE_NAMES} for name in EXPERIMENTS
}


def experiment(wildcards):
    return ALL_EXPERIMENTS[wildcards.experiment]


def owner_of(wildcards, role):
    """The experiment whose model a role of a job's experiment is (a privacy study's shared roles: another)."""
    return SHARED_MODELS.get(wildcards.experiment, {}).get(role, wildcards.experiment)


def model_dir(wildcards, role):
    """The folder of a role's model in a job's experiment (a privacy study's shared roles: another's)."""
    return f"results/{owner_of(wildcards, role)}/models/{role}"


def reference_model_dir(wildcards):
    """The folder of the model that calibrates a job's records (``reference_model``: own or crossed)."""
    return model_dir(wildcards, reference_role(experiment(wildcards), wildcards.records))


def trained_model_dirs(wildcards):
    """The folders of every model a job's experiment has (no reference model where it is crossed)."""
    return [model_dir(wildcards, role) for role in trained_roles(experiment(wildcards))]


# Experiments whose reference is crossed have no reference model, so no sample grid of one (rule
# sample_attacked_models).
CROSSED = [name for name, settings in ALL_EXPERIMENTS.items() if trained_roles(settings) == ATTACKED_ROLES]
CROSSED_PATTERN = "|".join(re.escape(name) for name in CROSSED) or "(?!)"  # (?!): matches nothing
WITH_REFERENCE_PATTERN = "|".join(re.escape(name) for name in ALL_EXPERIMENTS if name not in CROSSED) or "(?!)"


# A DP experiment of the privacy study that shares the non-private one's reference model also shares its
# reference losses: the same model on the same records with the same estimation and noise gives the same
# tensors byte for byte, so they are estimated once (rule estimate_attacked_losses).
SHARED_REFERENCE = [name for name, roles in SHARED_MODELS.items() if "reference" in roles]
SHARED_REFERENCE_PATTERN = "|".join(re.escape(name) for name in SHARED_REFERENCE) or "(?!)"  # (?!): matches nothing
OWN_REFERENCE_PATTERN = "|".join(re.escape(name) for name in ALL_EXPERIMENTS if name not in SHARED_REFERENCE)


def reference_losses(wildcards):
    """The reference model's loss tensor on a job's records (a shared reference model's: its owner's)."""
    return f"results/{owner_of(wildcards, 'reference')}/losses/reference-on-{wildcards.records}.npz"


def as_json(value):
    """``value`` as JSON for a rule's params, every mapping's keys sorted: Snakemake reruns a job whose
    params changed, so they must depend on the config's values only, never on the order of its keys.
    Every rule passes config values through this, not through json.dumps."""
    return json.dumps(value, sort_keys=True)


def section(name):
    """The named config section of a job's experiment, as JSON (for params)."""
    return lambda wildcards: as_json(experiment(wildcards)[name])


def data_section(wildcards):
    """The data section as JSON (for params), with an audit's given image folders, whose records every
    step appends to the data set."""
    return as_json(with_given_folders(experiment(wildcards)["data"], experiment(wildcards)["splits"]))


def given_record_inputs(wildcards):
    """An audit's given index files and image folders of the target model's records."""
    splits = experiment(wildcards)["splits"]
    return [splits[key] for key in [*GIVEN_SPLIT_KEYS, *GIVEN_FOLDER_KEYS] if key in splits]


def attacks_of(wildcards):
    return list(experiment(wildcards)["attacks"])


# Ablation studies (workflow/rules/ablations.smk).
from pfami.config import ablation_settings
from pfami.mechanisms import MECHANISM_NAMES, default_strengths

ABLATED_EXPERIMENTS = [name for name in EXPERIMENTS if "ablations" in config["experiments"][name]]
ABLATION_STUDIES = ["timesteps", "strengths", "query_budget", "mechanisms", "memorisation", "classifier_seeds"]


def ablation_studies(name):
    """An experiment's studies: the classifier-seed study needs PFAMI_NNs among its attacks."""
    attacks = config["experiments"][name]["attacks"]
    return [study for study in ABLATION_STUDIES if study != "classifier_seeds" or "pfami_nns" in attacks]
# The four loss tensors that H of the target and of the shadow records needs.
LOSS_PAIRS = ["target-on-target", "reference-on-target", "shadow-on-shadow", "reference-on-shadow"]


wildcard_constraints:
    mechanism="|".join(MECHANISM_NAMES),
    step="[0-9]+",


def ablations_of(wildcards):
    return ablation_settings(experiment(wildcards))


def mechanism_losses(wildcards):
    """{mechanism: {pair: loss tensor}}; the main mechanism's are the main run's tensors."""
    main = experiment(wildcards)["perturbation"]["mechanism"]
    folder = f"results/{wildcards.experiment}"
    return {
        mechanism: {
            pair: f"{folder}/losses/{pair}.npz" if mechanism == main else f"{folder}/ablations/losses/{pair}-{mechanism}.npz"
            for pair in LOSS_PAIRS
        }
        for mechanism in ablations_of(wildcards)["mechanisms"]
    }


def snapshots_to_train(wildcards):
    """Snapshot steps before the end of training (the last one is the main model)."""
    return [step for step in ablations_of(wildcards)["snapshot_steps"] if step < experiment(wildcards)["training"]["steps"]]


def snapshot_losses(wildcards):
    """{step: target-model loss tensor on the target records}; the final step is the main run's."""
    folder = f"results/{wildcards.experiment}"
    losses = {str(step): f"{folder}/ablations/losses/target_step_{step}-on-target.npz" for step in snapshots_to_train(wildcards)}
    losses[str(experiment(wildcards)["training"]["steps"])] = f"{folder}/losses/target-on-target.npz"
    return losses


# The privacy study (workflow/rules/privacy.smk).
def study_labels(wildcards):
    return [name.rsplit("eps_", 1)[1] for name in PRIVACY_EXPERIMENTS]


def study_files(pattern):
    return lambda wildcards: [pattern.format(experiment=name) for name in PRIVACY_EXPERIMENTS]
