"""The generated DVC stage list and the training-loss plot file, on hand-made inputs."""

import re

import numpy as np
import pytest
import yaml

from pfami.versioning import STAGES, dvc_pipeline, loss_curves_csv, script_dependencies
from tests.conftest import PROJECT, TINY_CONFIG


def test_loss_curves_csv_has_a_step_column_and_one_column_per_model():
    text = loss_curves_csv({"target": np.array([1.5, 0.25]), "shadow": np.array([2.0, 1.0])})
    assert text == "step,target,shadow\n1,1.5,2\n2,0.25,1\n"


def test_loss_curves_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different lengths"):
        loss_curves_csv({"target": np.ones(3), "shadow": np.ones(2)})
    # an audit's given target was trained elsewhere: no curve, no column
    assert loss_curves_csv({"target": np.array([]), "shadow": np.array([2.0])}) == "step,shadow\n1,2\n"


def test_script_dependencies_follow_imports_through_modules_and_subpackages(tmp_path):
    (tmp_path / "pfami" / "sub").mkdir(parents=True)
    (tmp_path / "pfami" / "a.py").write_text("import numpy\nfrom pfami.sub.x import f\n")
    (tmp_path / "pfami" / "sub" / "x.py").write_text("def f():\n    from pfami.b import g\n")
    (tmp_path / "pfami" / "b.py").write_text("")
    (tmp_path / "pfami" / "unused.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("import json\nfrom pfami.a import h\n")
    assert script_dependencies(script, tmp_path) == ["pfami/a.py", "pfami/b.py", "pfami/sub"]


def test_every_stage_runs_rules_that_exist_on_targets_under_its_experiment():
    rule_files = "".join(path.read_text() for path in (PROJECT / "workflow" / "rules").glob("*.smk"))
    rule_names = set(re.findall(r"^(?:rule|use rule \w+ as) (\w+)", rule_files, re.MULTILINE))
    experiments = yaml.safe_load(TINY_CONFIG.read_text())["experiments"]
    stages = dvc_pipeline(experiments, PROJECT)["stages"]
    # the VAE and LDM experiments have no SecMI / PIA attacks, so no baseline queries; only the LDM
    # has a shared autoencoder to train
    assert set(stages) == ({f"{stage.name}-{experiment}" for stage in STAGES for experiment in experiments}
                           - {"query_baselines-tiny_vae", "query_baselines-tiny_ldm", "autoencoder-tiny",
                              "autoencoder-tiny_vae"} | {"summary", "verdict"})
    assert "results/tiny/baselines" in stages["score-tiny"]["deps"]
    assert "results/tiny_vae/baselines" not in stages["score-tiny_vae"]["deps"]
    assert stages["autoencoder-tiny_ldm"]["outs"] == ["results/tiny_ldm/autoencoder"]
    assert "experiments.tiny_ldm.model.autoencoder" in stages["autoencoder-tiny_ldm"]["params"][0]["config/config.yaml"]
    assert "results/tiny_ldm/autoencoder" in stages["train-tiny_ldm"]["deps"]
    assert "results/tiny/autoencoder" not in stages["train-tiny"]["deps"]
    assert "results/tiny_ldm/figures/samples_shadow.png" in stages["samples-tiny_ldm"]["cmd"]
    # a crossed reference (tiny) trains and samples no third model; tiny_vae has its own reference model
    assert "results/tiny/models/reference" not in stages["train-tiny"]["cmd"]
    assert "results/tiny_vae/models/reference" in stages["train-tiny_vae"]["cmd"]
    assert stages["samples-tiny"]["outs"] == ["results/tiny/figures/samples_target.png",
                                              "results/tiny/figures/samples_shadow.png"]
    assert "results/tiny_vae/figures/samples_reference.png" in stages["samples-tiny_vae"]["outs"]
    assert "experiments.tiny.reference_model" in stages["estimate-tiny"]["params"][0]["config/config.yaml"]
    # the sample grids need only the models: a changed attack setting must not sample them again
    assert stages["samples-tiny"]["deps"][-1] == "results/tiny/models" and "sample_images" not in stages["figures-tiny"]["cmd"]
    for name, stage in stages.items():
        command, targets = stage["cmd"].split(" -- ")
        assert set(command.split("--allowed-rules ")[1].split()) <= rule_names, name
        assert all(target.startswith("results/") for target in targets.split())
        for dependency in stage["deps"]:
            assert dependency.startswith("results/") or (PROJECT / dependency).exists(), dependency
    scores = stages["score-tiny"]["cmd"]
    assert all(f"results/tiny/scores/{attack}.csv" in scores for attack in experiments["tiny"]["attacks"])
    assert stages["evaluate-tiny"]["metrics"] == [{"results/tiny/metrics.json": {"cache": False}}]


def test_the_verdict_depends_on_every_experiments_metrics_and_on_the_reference_where_there_is_one(tmp_path):
    tiny = yaml.safe_load(TINY_CONFIG.read_text())["experiments"]["tiny"]
    verdict = dvc_pipeline({"one": tiny}, PROJECT)["stages"]["verdict"]
    assert {"results/one/metrics.json", "results/reference_metrics.json"} <= set(verdict["deps"])
    assert verdict["outs"] == [{"results/reproduction.md": {"cache": False}}]
    assert "results/elsewhere.json" not in dvc_pipeline({"one": tiny}, PROJECT, "results/elsewhere.json")["stages"][
        "verdict"]["deps"]


def test_the_summary_depends_on_every_experiments_metrics():
    tiny = yaml.safe_load(TINY_CONFIG.read_text())["experiments"]["tiny"]
    summary = dvc_pipeline({"one": tiny, "two": tiny}, PROJECT)["stages"]["summary"]
    assert {"results/one/metrics.json", "results/two/metrics.json"} <= set(summary["deps"])
    assert summary["params"] == [{"config/config.yaml": ["experiments.one", "experiments.two"]}]


def test_the_split_stage_depends_on_the_local_data_files_it_reads():
    audit = yaml.safe_load(TINY_CONFIG.read_text())["experiments"]["tiny"]
    audit["data"] = {**audit["data"], "source": "image_folder", "path": "data/faces"}
    audit["splits"] = {**audit["splits"], "target_members_file": "audit/members.txt",
                       "target_holdout_folder": "audit/holdout"}
    stages = dvc_pipeline({"audit": audit}, PROJECT)["stages"]
    assert stages["split-audit"]["deps"][-3:] == ["data/faces", "audit/members.txt", "audit/holdout"]
    # later stages follow through splits.json, whose data fingerprint changes with the data
    assert "data/faces" not in stages["train-audit"]["deps"]
    assert "results/audit/splits.json" in stages["train-audit"]["deps"]
    # the digits come from a package: nothing local to depend on
    digits = dvc_pipeline({"tiny": yaml.safe_load(TINY_CONFIG.read_text())["experiments"]["tiny"]}, PROJECT)
    assert all(dependency.startswith(("pfami/", "scripts/", "workflow/"))
               for dependency in digits["stages"]["split-tiny"]["deps"])
