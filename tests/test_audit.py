"""Auditing a diffusion model trained elsewhere: given target model and given member / non-member records."""

import json
import runpy
import sys

import numpy as np
import pytest
import torch
import yaml

from pfami.config import ConfigError, check_config
from pfami.data import (AppendedImages, DataError, fingerprint, given_splits, image_folder_pixels, load_digits_images,
                        make_splits, open_images, read_index_file, to_model_range, with_given_folders)
from pfami.models.ddpm import adopt_pretrained_ddpm, build_scheduler, build_unet, load_ddpm
from pfami.models.folders import CheckpointError, read_loss_curve
from tests.conftest import (AUDIT_INPUTS, AUDIT_MEMBERS, AUDIT_NON_MEMBERS, PROJECT, TINY_CONFIG, save_foreign_ddpm,
                            write_random_images)

CPU = torch.device("cpu")
SIZES = {"members": 20, "holdout": 10}


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


def test_appended_images_index_like_one_array_without_copying_the_data():
    base = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1)
    images = AppendedImages(base, {"target_holdout": np.array([[[[9]]], [[[8]]]], dtype=np.uint8)})
    whole = np.concatenate([base, [[[[9]]], [[[8]]]]]).astype(np.uint8)
    assert images.shape == whole.shape and len(images) == 6 and images.appended_sets == {"target_holdout": [4, 5]}
    assert np.array_equal(images[[5, 0, 4]], whole[[5, 0, 4]]) and np.array_equal(images[3:6], whole[3:6])
    assert fingerprint(images) == fingerprint(whole) and np.array_equal(to_model_range(images), to_model_range(whole))


def test_given_folders_are_appended_in_one_order_whatever_the_order_of_their_keys(tmp_path):
    # The rules pass the data section as JSON with sorted keys: the records' indices must not follow them.
    write_random_images(tmp_path / "members", [(16, 16)] * 2, "L")
    write_random_images(tmp_path / "holdout", [(16, 16)] * 3, "L")
    folders = {"target_members_folder": str(tmp_path / "members"), "target_holdout_folder": str(tmp_path / "holdout")}
    data = {"source": "digits", "image_size": 16, "channels": 1}
    opened = [open_images({**data, "given_folders": dict(order)}) for order in (folders.items(), reversed(folders.items()))]
    assert opened[0].appended_sets == opened[1].appended_sets == {"target_members": [1797, 1798],
                                                                  "target_holdout": [1799, 1800, 1801]}
    assert fingerprint(opened[0]) == fingerprint(opened[1])


def test_image_folders_become_the_given_target_sets_after_the_data(tmp_path):
    write_random_images(tmp_path / "members", [(20, 30), (16, 16), (24, 20)], "RGB")  # resized, made grey
    splits = {"members": 5, "holdout": 5, "target_members_folder": str(tmp_path / "members"),
              "target_holdout_file": str(tmp_path / "holdout.txt")}
    (tmp_path / "holdout.txt").write_text("0 1")
    data = with_given_folders({"source": "digits", "image_size": 16, "channels": 1}, splits)
    assert data["given_folders"] == {"target_members_folder": str(tmp_path / "members")}
    images = open_images(data)
    assert len(images) == 1797 + 3
    given = given_splits(splits, images)
    assert given == {"target_holdout": [0, 1], "target_members": [1797, 1798, 1799]}
    # the same preprocessing as data.source image_folder; digits are float, so the records are too
    folder_records = to_model_range(image_folder_pixels(tmp_path / "members", 16, 1))
    np.testing.assert_array_equal(to_model_range(images, given["target_members"]), folder_records)
    np.testing.assert_array_equal(to_model_range(images, [0]), load_digits_images(16)[:1])


def test_missing_empty_or_unreadable_record_folders_name_the_key(tmp_path, monkeypatch, capsys):
    data = {"source": "digits", "image_size": 16, "channels": 1}
    (tmp_path / "empty").mkdir()
    write_random_images(tmp_path / "broken", [(16, 16)], "L")
    (tmp_path / "broken" / "bad.png").write_bytes(b"\x89PNG truncated")
    for folder, problem in (("missing", "does not exist"), ("empty", "holds no PNG/JPEG"), ("broken", "bad.png: cannot read")):
        splits = {"target_holdout_folder": str(tmp_path / folder)}
        with pytest.raises(DataError, match=f"^splits.target_holdout_folder: .*{folder}.*{problem}"):
            open_images(with_given_folders(data, splits))
    # the step itself (run in this process, as `python scripts/split_dataset.py` would): one line, a
    # non-zero exit and no split file
    output = tmp_path / "splits.json"
    monkeypatch.setattr(sys, "argv", ["split_dataset.py", "--data", json.dumps(with_given_folders(data, splits)),
                                      "--splits", json.dumps({"members": 5, "holdout": 5, **splits}),
                                      "--seed", "0", "--output", str(output)])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(str(PROJECT / "scripts" / "split_dataset.py"), run_name="__main__")
    assert exit_status.value.code == 1 and not output.exists() and not list(tmp_path.glob("*.partial*"))
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: splits.target_holdout_folder:") and len(error.splitlines()) == 1


def test_a_record_set_given_both_as_file_and_as_folder_is_a_config_error(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["splits"].update(target_members_file="m.txt", target_members_folder="members/")
    with pytest.raises(ConfigError, match="tiny.splits: give either target_members_file or target_members_folder"):
        check_config(config, PROJECT / "workflow" / "schemas" / "config.schema.yaml")


def test_adopting_a_foreign_model_keeps_its_outputs(tmp_path):
    save_foreign_ddpm(tmp_path / "foreign")
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
    save_foreign_ddpm(tmp_path / "small", image_size=8)
    with pytest.raises(CheckpointError, match="takes 1 x 8 px images but the data are 1 x 16 px"):
        adopt_pretrained_ddpm(tmp_path / "small", tmp_path / "out", 16, 1)
    save_foreign_ddpm(tmp_path / "pickled", safe=False)  # a .bin (pickle) checkpoint: never loaded
    with pytest.raises(CheckpointError, match=r"weights are a pickle \(diffusion_pytorch_model.bin\).*only safetensors"):
        adopt_pretrained_ddpm(tmp_path / "pickled", tmp_path / "out", 16, 1)
    assert not (tmp_path / "out").exists()


def test_a_full_diffusers_pipeline_folder_is_adopted(tmp_path):
    from diffusers import DDPMPipeline

    torch.manual_seed(3)
    unet = build_unet(16, 1, [8, 16], 1, []).eval()
    DDPMPipeline(unet=unet, scheduler=build_scheduler(1000, 1e-4, 0.02)).save_pretrained(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "model_index.json").exists()
    adopt_pretrained_ddpm(tmp_path / "pipeline", tmp_path / "adopted", 16, 1)
    # Compared as loaded: a freshly built module can differ from a loaded one in the last bit on the CPU.
    original, _ = load_ddpm(tmp_path / "pipeline", CPU)
    adopted, _ = load_ddpm(tmp_path / "adopted", CPU)
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([7])
    with torch.inference_mode():
        assert torch.equal(original(x, t).sample, adopted(x, t).sample)
        torch.testing.assert_close(unet(x, t).sample, adopted(x, t).sample)


@pytest.mark.workflow
def test_audit_of_a_given_model_runs_end_to_end(tiny_run):
    """The `audit` experiment of the session's tiny run (``tests.conftest.audit_experiment``): a tiny
    'foreign' DDPM saved by the test, its members (digits 0-4) and its non-members (digits 5-9) as
    folders of images; shadow and reference are trained on the data."""
    results = tiny_run / "results" / "audit"
    split_file = json.loads((results / "splits.json").read_text())
    splits = split_file["splits"]
    assert split_file["record_count"] == 1797 + len(AUDIT_MEMBERS) + len(AUDIT_NON_MEMBERS)
    assert splits["target_members"] == AUDIT_MEMBERS and splits["target_holdout"] == AUDIT_NON_MEMBERS
    drawn = [index for name, indices in splits.items() if not name.startswith("target") for index in indices]
    assert max(drawn) < 1797, "shadow and reference records come from the data, not the given folder"
    # Compared with the folder as loaded: a freshly built module can differ in the last bit on the CPU.
    foreign, _ = load_ddpm(tiny_run / AUDIT_INPUTS / "foreign", CPU)
    target, _ = load_ddpm(results / "models" / "target", CPU)
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([10])
    with torch.inference_mode():
        assert torch.equal(foreign(x, t).sample, target(x, t).sample)
    config = yaml.safe_load((tiny_run / "config" / "config.yaml").read_text())["experiments"]["audit"]
    assert len(read_loss_curve(results / "models" / "shadow")) == config["training"]["steps"]
    assert len(read_loss_curve(results / "models" / "target")) == 0, "the given target is adopted, not trained"
    with np.load(results / "losses" / "target-on-target.npz") as tensor:
        assert tensor["record_ids"].tolist() == AUDIT_MEMBERS + AUDIT_NON_MEMBERS
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["records"]["target_members"] == metrics["records"]["target_non_members"] == len(AUDIT_MEMBERS)
    assert 0 <= metrics["attacks"]["pfami_met"]["auc"] <= 1


@pytest.mark.workflow
def test_the_blind_baseline_sees_the_shift_of_an_audit_and_the_summary_warns(tiny_run):
    """Members digits 0-4, non-members digits 5-9: a classifier on the images alone tells them apart, and
    the summary says so beside the attacks; on the tiny experiment's random splits it does not."""
    metrics = json.loads((tiny_run / "results" / "audit" / "metrics.json").read_text())
    blind = metrics["blind_baseline"]
    assert blind["auc"] > 0.9 and blind["ci95"]["auc"][0] > 0.5, blind
    assert blind["queries_per_record"] == {"target": 0, "reference": 0}
    blocks = {block.split("\n", 1)[0]: block for block in (tiny_run / "results" / "summary.md").read_text().split("\n## ")[1:]}
    audit_lines = blocks["audit"].splitlines()
    warning = [line for line in audit_lines if line.startswith("Warning: the blind baseline")]
    assert len(warning) == 1 and f"AUC {blind['auc']:.3f}" in warning[0], blocks["audit"]
    # the sentence sits under the table, whose last row is the blind baseline's
    row = next(index for index, line in enumerate(audit_lines) if line.startswith("| Blind baseline"))
    assert audit_lines[row + 1] == "" and audit_lines[row + 2] == warning[0]
    tiny = json.loads((tiny_run / "results" / "tiny" / "metrics.json").read_text())["blind_baseline"]
    assert tiny["ci95"]["auc"][0] <= 0.5 and "Warning: the blind baseline" not in blocks["tiny"]
