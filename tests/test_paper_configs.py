"""The paper-scale configs: valid, and the whole DAG plans against a small stand-in data folder."""

import re

import numpy as np
import pytest
import yaml
from PIL import Image

from pfami.config import check_config
from tests.conftest import PROJECT, copy_project, run_snakemake

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
PAPER_CONFIGS = sorted((PROJECT / "config" / "paper").glob("*.yaml"))


def test_there_are_the_two_paper_configs():
    assert [path.name for path in PAPER_CONFIGS] == ["celeba64.yaml", "tinyimagenet64.yaml"]


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda path: path.stem)
def test_paper_config_passes_the_schema_and_the_cross_key_checks(path):
    config = yaml.safe_load(path.read_text())
    check_config(config, SCHEMA)
    (experiment,) = config["experiments"].values()
    assert experiment["model"]["block_out_channels"] == [128, 128, 256, 256, 512, 512]
    assert experiment["model"]["attention_levels"] == [4] and experiment["model"]["layers_per_block"] == 2
    training = experiment["training"]
    assert (training["learning_rate"], training["adam_betas"], training["weight_decay"], training["batch_size"],
            training["warmup_steps"]) == (1e-4, [0.95, 0.999], 1e-6, 16, 500)


def test_celeba_config_plans_the_whole_dag_against_a_stand_in_folder(tmp_path):
    stand_in = tmp_path / "img_align_celeba"
    stand_in.mkdir()
    for index in range(1, 4):
        Image.fromarray(np.zeros((218, 178, 3), np.uint8)).save(stand_in / f"{index:06d}.jpg")
    config = yaml.safe_load((PROJECT / "config" / "paper" / "celeba64.yaml").read_text())
    config["experiments"]["celeba64_ddpm"]["data"]["path"] = str(stand_in)
    workdir = copy_project(tmp_path / "project")
    (workdir / "paper.yaml").write_text(yaml.safe_dump(config))
    output = run_snakemake(workdir, "-n", "--configfile", "paper.yaml", "--replace-workflow-config").stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE))
    assert counts == {"split_dataset": "1", "train_model": "3", "estimate_losses": "2", "extract_fluctuations": "2",
                      "score_attack": "6", "evaluate": "1", "make_figures": "1", "make_summary": "1", "all": "1",
                      "collect_training_loss": "1", "sample_images": "1", "verify_reproduction": "1", "blind_baseline": "1",
                      "exposed_records": "1", "audit_document": "1", "total": "24"}
    assert "celeba64_ddpm" in output and "results/tiny/" not in output
