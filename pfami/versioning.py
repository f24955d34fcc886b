"""DVC versioning of the workflow: the stage list of ``dvc.yaml`` and the training-loss plot file.

``dvc.yaml`` is generated from the config rather than templated: the summary stage must depend on
every experiment's metrics, and DVC templating cannot expand a list of dependencies.

Each DVC stage runs Snakemake on its own targets with ``--allowed-rules`` limited to its own rules,
so a stage never rebuilds another stage's files: DVC decides *which stage* is stale (from hashes of
code, parameters and inputs), deletes that stage's outputs, and Snakemake rebuilds exactly them.
This keeps the two tools in agreement even without Snakemake's ``.snakemake/`` metadata (a fresh
clone, ``dvc exp run --temp``) and whatever mtimes ``dvc checkout`` leaves behind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pfami.config import FAMILY_OF
from pfami.data import ATTACKED_ROLES, GIVEN_FOLDER_KEYS, GIVEN_SPLIT_KEYS, trained_roles

CONFIG_FILE = "config/config.yaml"
# The figures `make_figures` draws for each experiment (results/{experiment}/figures/{name}.png).
FIGURES = ("roc", "fluctuation", "score_distributions", "training_loss")
# The audit's document (rule audit_document), its body alone, and the figures of each experiment it shows.
AUDIT_DOCUMENT, AUDIT_DOCUMENT_BODY = "results/audit.html", "results/audit_body.html"
AUDIT_FIGURES = ("roc", "training_loss", "exposed_records")
# The reproduction verdict, and the schema's default for the reference it compares with.
VERDICT = "results/reproduction.md"
DEFAULT_REFERENCE_RESULTS = "results/reference_metrics.json"


@dataclass(frozen=True)
class Stage:
    """One step of an experiment: the Snakemake rules it runs and what DVC tracks about it."""

    name: str
    rules: tuple[str, ...]
    scripts: tuple[str, ...]
    rule_files: tuple[str, ...]
    config_sections: tuple[str, ...]
    # Paths below results/{experiment}/.
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    # Path below results/{experiment}/ -> DVC output options.
    outs: dict[str, dict] = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)
    plots: dict[str, dict] = field(default_factory=dict)
    # The model families whose experiments have this stage (None: every family).
    families: tuple[str, ...] | None = None
    # Whether the stage reads the experiment's local data files (see ``local_data_paths``).
    reads_data: bool = False


STAGES = (
    Stage("split", ("split_dataset",), ("split_dataset.py",), ("data.smk",), ("seed", "data", "splits"),
          inputs=(), targets=("splits.json",), outs={"splits.json": {"cache": False}}, reads_data=True),
    # An LDM's shared autoencoder: its own stage, so retuning a role's U-Net does not retrain it.
    Stage("autoencoder", ("train_autoencoder",), ("train_autoencoder.py",), ("train.smk",),
          ("seed", "data", "splits", "model.autoencoder"), inputs=("splits.json",), targets=("autoencoder",),
          outs={"autoencoder": {}}, families=("ldm",)),
    Stage("train", ("train_model",), ("train_model.py",), ("train.smk",), ("seed", "data", "model", "training"),
          inputs=("splits.json", "autoencoder"), targets=("models/{role}",),
          outs={"models": {}}),
    Stage("estimate", ("estimate_losses",), ("estimate_losses.py",), ("attack.smk",),
          ("seed", "data", "splits", "estimation", "perturbation", "reference_model"), inputs=("splits.json", "models"),
          targets=tuple(f"losses/{model}-on-{records}.npz" for records in ATTACKED_ROLES
                        for model in (records, "reference")),
          outs={"losses": {}}),
    Stage("fluctuate", ("extract_fluctuations",), ("extract_fluctuations.py",), ("attack.smk",), ("fluctuation",),
          inputs=("losses",), targets=tuple(f"fluctuations/{records}.npz" for records in ATTACKED_ROLES),
          outs={"fluctuations": {}}),
    # The SecMI / PIA baselines query each role's model on its own records; only their query settings
    # are parameters here, so retuning a classifier does not re-query the models.
    Stage("query_baselines", ("estimate_baselines",), ("estimate_baselines.py",), ("baselines.smk",),
          ("data", "splits", "estimation.batch_size", *(f"attacks.{attack}" for attack in FAMILY_OF)),
          inputs=("splits.json", "models"),
          targets=tuple(f"baselines/{{family}}-{role}-on-{role}.npz" for role in ATTACKED_ROLES),
          outs={"baselines": {}}),
    Stage("score", ("score_attack", "score_baseline"), ("score_attack.py",), ("attack.smk", "baselines.smk"),
          ("seed", "attacks"), inputs=("fluctuations", "baselines"), targets=("scores/{attack}.csv",),
          outs={"scores": {}}),
    # The blind baseline reads the target's records only (no model): a changed model or attack leaves it be.
    Stage("blind", ("blind_baseline",), ("blind_baseline.py",), ("audit.smk",), ("seed", "data", "splits"),
          inputs=("splits.json",), targets=("blind_baseline/scores.csv",), outs={"blind_baseline": {}}),
    Stage("evaluate", ("evaluate",), ("evaluate.py",), ("attack.smk",), ("seed", "evaluation"),
          inputs=("scores", "fluctuations", "blind_baseline"), targets=("metrics.json",),
          metrics={"metrics.json": {"cache": False}}, plots={"roc": {"cache": False}}),
    # The loss-curve copy sits here, not in "train", so that editing it never makes DVC retrain the models.
    Stage("figures", ("make_figures", "collect_training_loss"), ("make_figures.py", "collect_training_loss.py"),
          ("report.smk", "versioning.smk"), (), inputs=("metrics.json", "roc", "scores", "fluctuations", "models"),
          targets=("figures/roc.png", "training_loss.csv"), outs={f"figures/{name}.png": {} for name in FIGURES},
          plots={"training_loss.csv": {"cache": False}}),
    # The most exposed records: the attacks' scores, the blind baseline's and the records' images.
    Stage("exposed", ("exposed_records",), ("exposed_records.py",), ("audit.smk",), (),
          inputs=("splits.json", "scores", "blind_baseline"), targets=("figures/exposed_records.png",),
          outs={"figures/exposed_records.png": {}, "exposed_records.csv": {}}),
    # The sample grids need the models only: a changed attack setting does not sample them again.
    Stage("samples", ("sample_images", "sample_attacked_models"), ("sample_images.py",), ("sample.smk",),
          ("sampling",), inputs=("models",), targets=("figures/samples_{role}.png",),
          outs={"figures/samples_{role}.png": {}}),
)


def script_dependencies(script: Path, package_root: Path) -> list[str]:
    """The ``pfami`` modules ``script`` imports, directly or through each other (paths below ``package_root``).

    A subpackage counts as a whole folder, so a new module in it is covered too.
    """
    seen: set[str] = set()
    pending = [script]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] != "pfami" or len(parts) < 2:
                    continue
                folder = package_root / "pfami" / parts[1]
                relative = f"pfami/{parts[1]}" if folder.is_dir() else f"pfami/{parts[1]}.py"
                if relative in seen:
                    continue
                seen.add(relative)
                location = package_root / relative
                pending.extend(sorted(location.rglob("*.py")) if location.is_dir() else [location])
    return sorted(seen)


def local_data_paths(settings: dict) -> list[str]:
    """The local files and folders an experiment's records come from: ``data.path`` and an audit's
    ``splits.*_file`` / ``*_folder``. The split stage depends on them, so that DVC sees a changed
    data set; the later stages follow through the data fingerprint in ``splits.json``."""
    data, splits = settings.get("data", {}), settings.get("splits", {})
    paths = [data["path"]] if "path" in data else []
    return paths + [splits[key] for key in (*GIVEN_SPLIT_KEYS, *GIVEN_FOLDER_KEYS) if key in splits]


def _stage_command(rules: tuple[str, ...], targets: list[str]) -> str:
    return "snakemake --cores all --allowed-rules " + " ".join(rules) + " -- " + " ".join(targets)


def _targets(stage: Stage, experiment: str, settings: dict) -> list[str]:
    """The stage's Snakemake targets: one per attack where a target names ``{attack}``, one per
    baseline family the attacks use where it names ``{family}`` (none: the stage is left out), one
    model where it names ``{role}`` (the trained roles: every family has them); none where the stage is
    for other model families."""
    if stage.families is not None and settings["model"]["family"] not in stage.families:
        return []
    attacks = list(settings["attacks"])
    families = sorted({FAMILY_OF[attack] for attack in attacks if attack in FAMILY_OF})
    paths = []
    for target in stage.targets:
        for attack in attacks:
            for family in families if "{family}" in target else [None]:
                for role in trained_roles(settings) if "{role}" in target else [None]:
                    paths.append(target.format(attack=attack, family=family, role=role))
    return [f"results/{experiment}/{path}" for path in dict.fromkeys(paths)]


def _has_key(settings: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(settings, dict) or part not in settings:
            return False
        settings = settings[part]
    return True


def _tracked(paths: dict[str, dict], experiment: str, settings: dict) -> list:
    """DVC's entries for ``paths`` below the experiment's folder, one per model where a path names ``{role}``."""
    paths = {path.format(role=role): options for path, options in paths.items()
             for role in (trained_roles(settings) if "{role}" in path else [None])}
    return [{f"results/{experiment}/{path}": dict(options)} if options else f"results/{experiment}/{path}"
            for path, options in paths.items()]


def dvc_pipeline(experiments: dict[str, dict], project: Path,
                 reference_results: str = DEFAULT_REFERENCE_RESULTS) -> dict:
    """The ``dvc.yaml`` document for ``experiments`` (the config's section) of the project at ``project``;
    ``reference_results``: the config's file of committed reference results."""
    stages = {}
    for experiment, settings in experiments.items():
        produced: set[str] = set()  # what the experiment's earlier stages write
        for stage in STAGES:
            targets = _targets(stage, experiment, settings)
            if not targets:
                continue
            scripts = [f"scripts/{script}" for script in stage.scripts]
            modules = {module for script in scripts for module in script_dependencies(project / script, project)}
            code = sorted({*scripts, *(f"workflow/rules/{name}" for name in stage.rule_files), *modules})
            definition = {
                "cmd": _stage_command(stage.rules, targets),
                "deps": code + [f"results/{experiment}/{path}" for path in stage.inputs if path in produced]
                + (local_data_paths(settings) if stage.reads_data else []),
            }
            produced |= {*stage.outs, *stage.metrics, *stage.plots}
            sections = [section for section in stage.config_sections if _has_key(settings, section)]
            if sections:
                definition["params"] = [{CONFIG_FILE: [f"experiments.{experiment}.{section}" for section in sections]}]
            for kind in ("outs", "metrics", "plots"):
                if getattr(stage, kind):
                    definition[kind] = _tracked(getattr(stage, kind), experiment, settings)
            stages[f"{stage.name}-{experiment}"] = definition
    summary_scripts = ["scripts/make_summary.py", "scripts/make_audit_document.py"]
    summary_code = [*summary_scripts, "workflow/rules/report.smk",
                    *(module for script in summary_scripts for module in script_dependencies(project / script, project))]
    stages["summary"] = {
        "cmd": _stage_command(("make_summary", "audit_document"),
                              ["results/summary.md", "results/summary.csv", AUDIT_DOCUMENT]),
        "deps": sorted(set(summary_code)) + [f"results/{experiment}/metrics.json" for experiment in experiments]
        # The audit's document shows these figures of every experiment.
        + [f"results/{experiment}/figures/{figure}.png" for experiment in experiments for figure in AUDIT_FIGURES],
        # The table's row labels describe each experiment's settings.
        "params": [{CONFIG_FILE: [f"experiments.{experiment}" for experiment in experiments]}],
        "outs": [{"results/summary.md": {"cache": False}}, {"results/summary.csv": {"cache": False}}, AUDIT_DOCUMENT,
                 AUDIT_DOCUMENT_BODY],
    }
    # The reproduction verdict reads the committed reference results, which no stage writes.
    verdict_code = ["scripts/verify_reproduction.py", "workflow/rules/report.smk",
                    *script_dependencies(project / "scripts/verify_reproduction.py", project)]
    stages["verdict"] = {
        "cmd": _stage_command(("verify_reproduction",), [VERDICT]),
        "deps": sorted(set(verdict_code)) + [f"results/{experiment}/metrics.json" for experiment in experiments]
        + ([reference_results] if (project / reference_results).exists() else []),
        "params": [{CONFIG_FILE: [f"experiments.{experiment}" for experiment in experiments]}],
        "outs": [{VERDICT: {"cache": False}}],
    }
    plots = []
    for experiment, settings in experiments.items():
        plots.append({f"results/{experiment}/roc": {"x": "fpr", "y": "tpr", "template": "workflow/dvc/roc_log.json",
                                                     "title": f"{experiment}: ROC (log axes)"}})
        plots.append({f"results/{experiment}/training_loss.csv": {"x": "step", "y": list(trained_roles(settings)),
                                                                  "title": f"{experiment}: training loss"}})
    return {"stages": stages, "plots": plots}


def loss_curves_csv(curves: dict[str, np.ndarray]) -> str:
    """Loss curves of equal length as CSV: ``step`` then one column per curve. An empty curve (a model
    trained elsewhere, an audit's given target) has no column."""
    curves = {name: curve for name, curve in curves.items() if len(curve)}
    lengths = {len(curve) for curve in curves.values()}
    if len(lengths) > 1:
        raise ValueError(f"loss curves of different lengths: { {name: len(c) for name, c in curves.items()} }")
    names = list(curves)
    rows = [",".join(["step", *names])]
    for step in range(lengths.pop() if lengths else 0):
        rows.append(",".join([str(step + 1), *(f"{float(curves[name][step]):.6g}" for name in names)]))
    return "\n".join(rows) + "\n"
