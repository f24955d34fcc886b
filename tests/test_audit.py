"""Auditing a diffusion model trained elsewhere: given target model and given member / non-member records."""

import json

import numpy as np
import pytest
import torch
import yaml

from pfami.data import DataError, make_splits, read_index_file
from pfami.models.ddpm import adopt_pretrained_ddpm, build_scheduler, build_unet, load_ddpm
from pfami.models.training import CheckpointError, read_loss_curve
from tests.conftest import TINY_CONFIG, copy_project, run_snakemake

CPU = torch.device("cpu")
SIZES = {"members": 20, "holdout": 10}


def _save_foreign_ddpm(folder, image_size=16, safe=True):
    """A diffusers folder as another project would leave it: unet/ + scheduler/, no training.json."""
    torch.manual_seed(3)
    build_unet(image_size, 1, [8, 16], 1, []).save_pretrained(folder / "unet", safe_serialization=safe)
    build_scheduler(1000, 1e-4, 0.02).save_pretrained(folder / "scheduler")


def test_given_target_sets_are_kept_and_the_others_drawn_from_the_rest():
    given = {"target_members": [5, 1, 3], "target_holdout": [7, 0]}
    splits = make_splits(200, SIZES, seed=0, given=given)
    assert splits["target_members"] == [1, 3, 5] and splits["target_holdout"] == [0, 7]
    everything = [index for indices in splits.values() for index in indices]
    assert len(everything) == len(set(everything)) == 5 + 2 * (20 + 10)
    assert len(splits["shadow_members"]) == 20 and len(splits["reference_holdout"]) == 10
    with pytest.raises(DataError, match="must be disjoint"):
        make_splits(200, SIZES, 0, {"target_members": [1, 2], "target_holdout": [2]})
    with pytest.raises(DataError, match="outside 0..199"):
        make_splits(200, SIZES, 0, {"target_members": [200]})
    with pytest.raises(DataError, match="has 88 left"):
        make_splits(100, {"members": 30, "holdout": 30}, 0, {"target_members": list(range(12))})


def test_index_files_as_json_or_plain_text(tmp_path):
    (tmp_path / "a.json").write_text("[3, 1, 2]")
    (tmp_path / "b.txt").write_text("3\n1\n2\n")
    (tmp_path / "c.txt").write_text("3 one")
    assert read_index_file(tmp_path / "a.json") == read_index_file(tmp_path / "b.txt") == [3, 1, 2]
    with pytest.raises(DataError, match="not a JSON list"):
        read_index_file(tmp_path / "c.txt")
    with pytest.raises(DataError, match="index file not found"):
        read_index_file(tmp_path / "none.txt")


def test_adopting_a_foreign_model_keeps_its_outputs(tmp_path):
    _save_foreign_ddpm(tmp_path / "foreign")
    adopt_pretrained_ddpm(tmp_path / "foreign", tmp_path / "adopted", 16, 1)
    original, _ = load_ddpm(tmp_path / "foreign", CPU)
    adopted, scheduler = load_ddpm(tmp_path / "adopted", CPU)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 400])
    with torch.inference_mode():
        assert torch.equal(original(x, t).sample, adopted(x, t).sample)
    assert torch.equal(scheduler.alphas_cumprod, build_scheduler(1000, 1e-4, 0.02).alphas_cumprod)
    record = json.loads((tmp_path / "adopted" / "training.json").read_text())
    assert record["family"] == "ddpm" and record["pretrained"].endswith("foreign")
    assert len(read_loss_curve(tmp_path / "adopted")) == 0


def test_foreign_models_that_do_not_fit_or_need_pickle_are_refused(tmp_path):
    _save_foreign_ddpm(tmp_path / "small", image_size=8)
    with pytest.raises(CheckpointError, match="takes 1 x 8 px images but the data are 1 x 16 px"):
        adopt_pretrained_ddpm(tmp_path / "small", tmp_path / "out", 16, 1)
    _save_foreign_ddpm(tmp_path / "pickled", safe=False)  # a .bin (pickle) checkpoint: never loaded
    with pytest.raises(CheckpointError, match="cannot load the model"):
        adopt_pretrained_ddpm(tmp_path / "pickled", tmp_path / "out", 16, 1)
    assert not (tmp_path / "out").exists()


@pytest.mark.workflow
def test_audit_of_a_given_model_runs_end_to_end(tmp_path):
    """The test saves a tiny 'foreign' DDPM and its record lists; shadow and reference are trained."""
    workdir = copy_project(tmp_path / "audit")
    _save_foreign_ddpm(tmp_path / "foreign")
    members, non_members = list(range(0, 40, 2)), list(range(1, 40, 2))
    (tmp_path / "members.json").write_text(json.dumps(members))
    (tmp_path / "non_members.txt").write_text("\n".join(map(str, non_members)))
    config = yaml.safe_load(TINY_CONFIG.read_text())
    audit = config["experiments"]["tiny"]
    audit["model"]["pretrained"] = str(tmp_path / "foreign")
    audit["splits"].update(target_members_file=str(tmp_path / "members.json"),
                           target_holdout_file=str(tmp_path / "non_members.txt"))
    audit["attacks"] = {"loss": {}, "pfami_met": {}}  # fewer jobs; the attacks have their own tests
    config["experiments"] = {"audit": audit}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, "--cores", "2", "results/audit/metrics.json", "results/audit/figures/training_loss.png")

    results = workdir / "results" / "audit"
    splits = json.loads((results / "splits.json").read_text())["splits"]
    assert splits["target_members"] == members and splits["target_holdout"] == sorted(non_members)
    # Compared with the folder as loaded: a freshly built module can differ in the last bit on the CPU.
    foreign, _ = load_ddpm(tmp_path / "foreign", CPU)
    target, _ = load_ddpm(results / "models" / "target", CPU)
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([10])
    with torch.inference_mode():
        assert torch.equal(foreign(x, t).sample, target(x, t).sample)
    assert len(read_loss_curve(results / "models" / "shadow")) == audit["training"]["steps"]
    with np.load(results / "losses" / "target-on-target.npz") as tensor:
        assert tensor["record_ids"].tolist() == members + sorted(non_members)
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["records"]["target_members"] == 20 and metrics["records"]["target_non_members"] == 20
    assert 0 <= metrics["attacks"]["pfami_met"]["auc"] <= 1
