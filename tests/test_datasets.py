"""Real data set sources (image folder, Tiny-ImageNet, CIFAR-10, .npz) and their uint8 cache, on
small synthetic stand-ins written by the tests."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pfami import data
from pfami.data import (DataError, fingerprint, load_image_folder, load_splits, make_splits, open_images, records_of,
                        save_splits, to_model_range)
from tests.conftest import PROJECT

SIZES = {"members": 30, "holdout": 20}


def _folder_config(folder, channels, image_size=8, source="image_folder"):
    return {"source": source, "path": str(folder), "image_size": image_size, "channels": channels}


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """300 tiny PNGs of assorted sizes, half RGB and half grey, in two sub-folders."""
    folder = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for index in range(300):
        mode, sub = ("RGB", "colour") if index % 2 else ("L", "grey")
        height, width = int(rng.integers(8, 14)), int(rng.integers(8, 14))
        shape = (height, width, 3) if mode == "RGB" else (height, width)
        (folder / sub).mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / sub / f"{index:03d}.png")
    return folder


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_through_the_cache_splits_and_loading(mixed_folder, tmp_path, channels):
    config = _folder_config(mixed_folder, channels)
    images = open_images(config, tmp_path / "cache")
    assert isinstance(images, np.memmap) and images.dtype == np.uint8 and images.shape == (300, channels, 8, 8)
    # The cached pixels are exactly what decoding without a cache gives.
    assert np.array_equal(to_model_range(images), load_image_folder(mixed_folder, 8, channels))
    splits = make_splits(len(images), SIZES, seed=5)
    save_splits(tmp_path / "splits.json", splits, fingerprint(images), len(images))
    record_ids, records, is_member = records_of(images, load_splits(tmp_path / "splits.json", images), "target")
    assert records.dtype == np.float32 and records.shape == (50, channels, 8, 8) and is_member.sum() == 30
    assert -1.0 <= records.min() < records.max() <= 1.0
    assert np.array_equal(records, to_model_range(images[record_ids]))
    sidecar = json.loads(next((tmp_path / "cache").glob("*.json")).read_text())
    assert sidecar["shape"] == [300, channels, 8, 8] and sidecar["files"] == 300


def test_fingerprint_in_chunks_equals_the_whole_array_digest(monkeypatch):
    images = np.random.default_rng(1).integers(0, 256, (50, 3, 4, 4), dtype=np.uint8)
    whole = fingerprint(images)
    monkeypatch.setattr(data, "FINGERPRINT_CHUNK_BYTES", 100)  # two records per chunk
    assert fingerprint(images) == whole


def test_a_changed_file_rebuilds_the_cache_and_invalidates_the_splits(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for index in range(160):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{index:03d}.png")
    config, cache = _folder_config(folder, 3), tmp_path / "cache"
    images = open_images(config, cache)
    save_splits(tmp_path / "splits.json", make_splits(160, SIZES, 0), fingerprint(images), 160)
    first_cache = sorted(cache.glob("*.npy"))
    assert np.array_equal(open_images(config, cache), images) and sorted(cache.glob("*.npy")) == first_cache

    first_cache[0].unlink()  # a new file: rewriting the mapped one in place would pull it from under `images`
    first_cache[0].write_bytes(b"damaged")  # a damaged cache is rebuilt, not an error
    assert np.array_equal(open_images(config, cache), images)

    changed = folder / "007.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    rebuilt = open_images(config, cache)
    assert not rebuilt[7].any() and images[7].any()
    assert sorted(cache.glob("*.npy")) != first_cache and len(list(cache.glob("*.npy"))) == 1  # stale one removed
    with pytest.raises(DataError, match="drawn on different data"):
        load_splits(tmp_path / "splits.json", rebuilt)


def _write_tiny_imagenet(root, classes=3, per_class=4, val=5):
    rng = np.random.default_rng(3)
    for number in range(classes):
        wnid = f"n0000000{number}"
        (root / "train" / wnid / "images").mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for index in range(per_class):
            # Tiny-ImageNet holds a few grey JPEGs among the RGB ones.
            mode, shape = ("L", (64, 64)) if index == 0 else ("RGB", (64, 64, 3))
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / "train" / wnid / "images" / f"{wnid}_{index}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for index in range(val):
        Image.fromarray(np.full((64, 64, 3), (40 * index) % 250, np.uint8)).save(root / "val" / "images" / f"val_{index}.JPEG")
        lines.append(f"val_{index}.JPEG\tn00000000\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_uses_train_then_val_and_the_split_script_runs(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    _write_tiny_imagenet(root, classes=3, per_class=40, val=40)
    config = _folder_config(root, 3, image_size=16, source="tiny_imagenet")
    images = open_images(config, tmp_path / "cache")
    assert images.shape == (160, 3, 16, 16)
    # Val images come last, in file-name order (val_0, val_1, val_10, ...); val_k is the flat level 40 k mod 250.
    assert np.allclose([images[120 + index].mean() for index in range(3)], [0, 40, 150], atol=2)
    result = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "split_dataset.py"), "--data", json.dumps(config),
         "--splits", json.dumps({"members": 30, "holdout": 20, "mode": "contiguous"}), "--seed", "0",
         "--output", str(tmp_path / "splits.json"), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT)})
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "splits.json").read_text())
    assert written["record_count"] == 160 and written["fingerprint"] == fingerprint(images)
    assert written["splits"]["target_members"] == list(range(30))
    assert written["splits"]["reference_holdout"] == list(range(130, 150))


def test_tiny_imagenet_without_its_layout_names_the_missing_folder(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"val/images is missing"):
        open_images(_folder_config(tmp_path, 3, source="tiny_imagenet"), tmp_path / "cache")


def _write_cifar10(root, per_batch=30):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    batches = {}
    for name in data.CIFAR10_BATCHES:
        pixels = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batches[name] = pixels
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": list(range(per_batch)), b"data": pixels}, handle)
    return batches


def test_cifar10_batches_through_splits_and_loading(tmp_path):
    batches = _write_cifar10(tmp_path / "cifar")
    config = _folder_config(tmp_path / "cifar", 3, image_size=32, source="cifar10")
    images = open_images(config, tmp_path / "cache")
    assert images.shape == (180, 3, 32, 32)
    # Rows are the red, green and blue planes; the test batch comes last.
    assert np.array_equal(images[0], batches["data_batch_1"][0].reshape(3, 32, 32))
    assert np.array_equal(images[179], batches["test_batch"][29].reshape(3, 32, 32))
    splits = make_splits(len(images), SIZES, seed=1)
    _, records, _ = records_of(images, splits, "reference", attacked_per_part=3)
    assert records.shape == (6, 3, 32, 32) and records.dtype == np.float32
    grey = open_images({**config, "channels": 1, "image_size": 16, "path": str(tmp_path / "cifar" / "cifar-10-batches-py")},
                       tmp_path / "cache")
    assert grey.shape == (180, 1, 16, 16)


def test_bad_cifar10_batches_are_named(tmp_path):
    _write_cifar10(tmp_path, per_batch=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR-10 python batch"):
        open_images(_folder_config(tmp_path, 3, 32, "cifar10"), tmp_path / "cache")
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=r"lacks the CIFAR-10 batches \['test_batch'\]"):
        open_images(_folder_config(tmp_path, 3, 32, "cifar10"), tmp_path / "cache")


def test_npz_layouts_and_float_range_give_the_same_images(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 256, (160, 8, 8, 3), dtype=np.uint8)  # N, H, W, C
    layouts = {"nhwc": pixels, "nchw": pixels.transpose(0, 3, 1, 2), "float": pixels / 255.0}
    loaded = {}
    for name, array in layouts.items():
        np.savez(tmp_path / f"{name}.npz", images=array)
        loaded[name] = open_images(_folder_config(tmp_path / f"{name}.npz", 3, source="npz"), tmp_path / "cache")
    assert all(np.array_equal(loaded[name], pixels.transpose(0, 3, 1, 2)) for name in loaded)
    np.savez(tmp_path / "grey.npz", images=pixels[..., 0])
    grey = open_images(_folder_config(tmp_path / "grey.npz", 1, source="npz"), tmp_path / "cache")
    assert np.array_equal(grey[:, 0], pixels[..., 0])
    splits = make_splits(len(grey), SIZES, seed=2)
    assert records_of(grey, splits, "shadow")[1].shape == (50, 1, 8, 8)


def test_bad_npz_contents_are_refused_with_the_numbers(tmp_path):
    np.savez(tmp_path / "wide.npz", images=np.full((4, 8, 8), 1.5))
    with pytest.raises(DataError, match=r"wide.npz: float 'images' must lie in \[0, 1\] but range over \[1.5, 1.5\]"):
        open_images(_folder_config(tmp_path / "wide.npz", 1, source="npz"), tmp_path / "cache")
    np.savez(tmp_path / "other.npz", pictures=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"no 'images' array \(it holds \['pictures'\]\)"):
        open_images(_folder_config(tmp_path / "other.npz", 1, source="npz"), tmp_path / "cache")
    np.savez(tmp_path / "shape.npz", images=np.zeros((4, 8, 8, 5), np.uint8))
    with pytest.raises(DataError, match=r"has shape \(4, 8, 8, 5\)"):
        open_images(_folder_config(tmp_path / "shape.npz", 1, source="npz"), tmp_path / "cache")


def test_bad_images_and_too_small_data_sets_give_one_line(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(folder / "b_16bit.png")
    with pytest.raises(DataError, match=r"b_16bit.png: image mode I;16 .* cannot be read as 8-bit"):
        open_images(_folder_config(folder, 1), tmp_path / "cache")
    (folder / "b_16bit.png").write_bytes((folder / "a.png").read_bytes()[:30])  # truncated PNG
    with pytest.raises(DataError, match=r"b_16bit.png: cannot read image"):
        open_images(_folder_config(folder, 1), tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npy")), "a failed build left a cache behind"
    (folder / "b_16bit.png").unlink()
    images = open_images(_folder_config(folder, 1), tmp_path / "cache")
    with pytest.raises(DataError, match=r"3 roles x \(30 members \+ 20 hold-outs\) = 150 records but the data set has 1"):
        make_splits(len(images), SIZES, seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no PNG/JPEG images"):
        open_images(_folder_config(tmp_path / "empty", 1), tmp_path / "cache")


def test_contiguous_splits_reproduce_the_authors_celeba_ranges():
    splits = make_splits(202_599, {"members": 50_000, "holdout": 10_000, "mode": "contiguous"}, seed=0)
    ranges = {name: (indices[0], indices[-1] + 1) for name, indices in splits.items()}
    assert ranges == {"target_members": (0, 50_000), "target_holdout": (50_000, 60_000),
                      "shadow_members": (60_000, 110_000), "shadow_holdout": (110_000, 120_000),
                      "reference_members": (120_000, 170_000), "reference_holdout": (170_000, 180_000)}
    with pytest.raises(DataError, match="splits.mode: unknown mode 'blocks'"):
        make_splits(400, {**SIZES, "mode": "blocks"}, seed=0)
