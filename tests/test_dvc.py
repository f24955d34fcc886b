"""DVC round trips on the tiny config, in a temporary git repository holding a copy of the project.

The workflow runs once in full (``dvc repro``, started in the background as the session begins:
the ``versioned`` fixture of tests/conftest.py) and once in part (a parameter change); the clone
test only restores files and asks DVC and Snakemake whether anything is left to do.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from pfami.versioning import dvc_pipeline
from tests.conftest import PROJECT, run_command as run, run_snakemake, stages_run

pytestmark = pytest.mark.workflow

ROLES = ("target", "shadow")  # the tiny experiment's reference is crossed: no third model


def model_files(workdir: Path) -> dict[str, int]:
    """Each model file's modification time in nanoseconds: a retrained model changes it."""
    models = workdir / "results" / "tiny" / "models"
    return {str(path.relative_to(models)): path.stat().st_mtime_ns
            for path in sorted(models.rglob("*")) if path.is_file()}


def test_dvc_yaml_is_current_for_the_default_config():
    experiments = yaml.safe_load((PROJECT / "config" / "config.yaml").read_text())["experiments"]
    committed = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    assert committed == dvc_pipeline(experiments, PROJECT), "rerun `python scripts/write_dvc_yaml.py`"


def test_repro_tracks_results_and_a_second_repro_does_nothing(versioned):
    tracked = run(versioned, "git", "ls-files", "results").split()
    assert {"results/tiny/metrics.json", "results/tiny/splits.json", "results/tiny/training_loss.csv",
            "results/summary.md", "results/tiny/roc/pfami_met.csv"} <= set(tracked)
    assert not [path for path in tracked if "/models/" in path or "/losses/" in path], "checkpoints belong in DVC"
    assert "/models" in (versioned / "dvc.lock").read_text()
    # Bytecode that Python writes beside the library's modules (most machines do; make does) is no part
    # of the code that the stages depend on (pfami/models/ and pfami/attacks/ are directories).
    for package in ("pfami", "pfami/models", "pfami/attacks"):
        (versioned / package / "__pycache__").mkdir(exist_ok=True)
        (versioned / package / "__pycache__" / "written_by_python.cpython-311.pyc").write_bytes(b"bytecode")
    assert stages_run(run(versioned, "dvc", "repro")) == set()
    assert "Nothing to be done" in run_snakemake(versioned, "-n").stdout
    plots = run(versioned, "dvc", "plots", "show", "--json")
    assert '"log"' in plots and "training_loss.csv" in plots


def test_same_config_gives_same_splits_and_metrics(versioned, tiny_run):
    # `dvc repro` ran the tiny experiment from scratch, in another folder and process tree, as the
    # session's plain Snakemake run did: the same config must give the same splits and, on CPU,
    # the same metrics for every attack both ran (each attack's metrics depend on its scores only).
    # The two runs were side by side, so this also holds under load. The first repro's files are
    # compared: the parameter change below rewrites the workspace's metrics.
    dvc_results, snakemake_results = versioned.parent / "first_repro", tiny_run / "results" / "tiny"
    assert (dvc_results / "splits.json").read_text() == (snakemake_results / "splits.json").read_text()
    through_dvc = json.loads((dvc_results / "metrics.json").read_text())["attacks"]
    through_snakemake = json.loads((snakemake_results / "metrics.json").read_text())["attacks"]
    assert set(through_dvc) == {"loss", "pfami_met", "pfami_met_single", "pfami_nns"}
    for attack, metrics in through_dvc.items():
        assert metrics == through_snakemake[attack], attack


def test_a_changed_attack_setting_reruns_only_what_depends_on_it(versioned):
    models_before = model_files(versioned)
    output = run(versioned, "dvc", "exp", "run", "-S",
                 "config/config.yaml:experiments.tiny.attacks.pfami_met_single.strength_index=2")
    assert stages_run(output) == {"score-tiny", "evaluate-tiny", "figures-tiny", "exposed-tiny", "summary", "verdict"}
    # The verdict compares with the committed reference, not with what the experiment just wrote.
    assert ("Verdict: NOT REPRODUCED: tiny was run with other settings than the reference "
            "(attacks.pfami_met_single.strength_index)") in output
    assert "Rule: train_model" not in output and "Rule: estimate_losses" not in output
    assert model_files(versioned) == models_before
    params = [line.split() for line in run(versioned, "dvc", "params", "diff").splitlines()]
    assert ["config/config.yaml", "experiments.tiny.attacks.pfami_met_single.strength_index", "1", "2"] in params
    changed_metrics = {line.split()[1] for line in run(versioned, "dvc", "metrics", "diff").splitlines()[1:]}
    assert changed_metrics and all(name.startswith("attacks.pfami_met_single.") for name in changed_metrics)
    summary_changes = [line for line in run(versioned, "git", "diff", "results/summary.csv").splitlines()
                       if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert summary_changes and all(line[1:].startswith("tiny,pfami_met_single,") for line in summary_changes)
    table = list(csv.DictReader(io.StringIO(run(versioned, "dvc", "exp", "show", "--csv", "--no-pager"))))
    strengths = {row["Experiment"] or row["rev"]: row["experiments.tiny.attacks.pfami_met_single.strength_index"]
                 for row in table}
    assert strengths["workspace"] == "2" and "1" in strengths.values()
    assert len([row for row in table if row["Experiment"]]) == 1, "the experiment is listed"
    # The config stays valid for Snakemake after DVC rewrote it.
    assert "Nothing to be done" in run_snakemake(versioned, "-n").stdout


def test_a_fresh_clone_pulls_checkpoints_and_results_and_retrains_nothing(versioned, tmp_path):
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(versioned), str(clone))
    run(clone, "dvc", "pull")
    for role in ROLES:
        assert (clone / "results" / "tiny" / "models" / role / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert (clone / "results" / "tiny" / "fluctuations" / "target.npz").exists()
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status")
    # Checkout order leaves mtimes that Snakemake misreads as stale (never the training: its input is
    # git's splits.json, older than the pulled models); `--touch` makes it agree with DVC.
    plan = run_snakemake(clone, "-n").stdout
    assert "rule train_model" not in plan and "rule split_dataset" not in plan
    run_snakemake(clone, "--touch", "--cores", "1")
    assert "Nothing to be done" in run_snakemake(clone, "-n").stdout
    assert stages_run(run(clone, "dvc", "repro")) == set()
