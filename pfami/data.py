"""Data sets and the six disjoint splits.

Every loader returns a float32 array [R, C, S, S] scaled to [-1, 1]. ``make_splits`` draws
target / shadow / reference x member / hold-out index sets and records a fingerprint of the
data so that a split file is never paired with other data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

ROLES = ("target", "shadow", "reference")
SPLIT_NAMES = tuple(f"{role}_{part}" for role in ROLES for part in ("members", "holdout"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(ValueError):
    """Bad or missing input data; the message names the file or key and what to do."""


def load_digits_images(image_size: int) -> np.ndarray:
    """scikit-learn's 1797 8x8 digits, resized (bilinear) to ``image_size`` and scaled to [-1, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32) / 16.0  # values 0..16
    if image_size != 8:
        digits = np.stack(
            [
                np.asarray(Image.fromarray(image, mode="F").resize((image_size, image_size), Image.BILINEAR))
                for image in digits
            ]
        )
    return (np.clip(digits, 0.0, 1.0) * 2.0 - 1.0)[:, None, :, :].astype(np.float32)


def _centre_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def load_image_folder(folder: str | Path, image_size: int, channels: int, resize: bool = True) -> np.ndarray:
    """Every PNG/JPEG under ``folder`` (recursive, sorted by path), centre-cropped to a square and
    resized to ``image_size``; ``resize=False`` demands that every image already has that size."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.path: image folder {folder} does not exist; point data.path at a folder of PNG/JPEG images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"data.path: image folder {folder} holds no PNG/JPEG images; add images or fix the path")
    mode = {1: "L", 3: "RGB"}[channels]
    images = []
    for path in paths:
        try:
            with Image.open(path) as opened:
                image = opened.convert(mode)
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{path}: cannot read image ({error}); remove or replace the file") from None
        if resize:
            image = _centre_square(image).resize((image_size, image_size), Image.BILINEAR)
        elif image.size != (image_size, image_size):
            raise DataError(
                f"{path}: image is {image.size[0]}x{image.size[1]} but data.image_size is {image_size} and "
                "data.resize is false; set data.resize: true or use images of one size"
            )
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        images.append(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1))
    return (np.stack(images) * 2.0 - 1.0).astype(np.float32)


def load_dataset(data_config: dict) -> np.ndarray:
    """The images an experiment's ``data`` config names, as [R, C, S, S] in [-1, 1]."""
    source = data_config["source"]
    if source == "digits":
        if data_config.get("channels", 1) != 1:
            raise DataError("data.channels: the digits data set is grey; set data.channels: 1")
        return load_digits_images(data_config["image_size"])
    if source == "image_folder":
        return load_image_folder(
            data_config["path"], data_config["image_size"], data_config.get("channels", 3), data_config.get("resize", True)
        )
    raise DataError(f"data.source: unknown source {source!r}; use 'digits' or 'image_folder'")


def fingerprint(images: np.ndarray) -> str:
    """SHA-256 over the shape and the bytes of the preprocessed images."""
    digest = hashlib.sha256(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def read_index_file(path: str | Path) -> list[int]:
    """Record indices (into the data set, in path order for an image folder) from a JSON list or a
    text file of whitespace-separated integers."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: index file not found; point the splits key at an existing file")
    text = path.read_text()
    try:
        values = json.loads(text) if text.lstrip().startswith("[") else [int(token) for token in text.split()]
    except ValueError:
        raise DataError(f"{path}: not a JSON list or whitespace-separated integers") from None
    if not all(isinstance(value, int) for value in values):
        raise DataError(f"{path}: every entry must be an integer record index")
    return values


def make_splits(record_count: int, sizes: dict[str, int], seed: int,
                given: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Six disjoint index sets, drawn without replacement with ``seed``.

    ``sizes`` maps ``members`` and ``holdout`` to the per-role counts. ``given`` fixes some sets
    (e.g. the members and non-members of a target model trained elsewhere); the others are drawn
    from the records left."""
    given = {name: sorted(indices) for name, indices in (given or {}).items()}
    fixed = [index for indices in given.values() for index in indices]
    if len(set(fixed)) != len(fixed):
        raise DataError("splits: the given record sets repeat or share records; they must be disjoint")
    outside = [index for index in fixed if not 0 <= index < record_count]
    if outside:
        raise DataError(f"splits: given record indices {outside[:5]} are outside 0..{record_count - 1}")
    to_draw = [name for name in SPLIT_NAMES if name not in given]
    needed = sum(sizes["members"] if name.endswith("members") else sizes["holdout"] for name in to_draw)
    if needed > record_count - len(fixed):
        what = f"3 roles x ({sizes['members']} members + {sizes['holdout']} hold-outs)" if not given else \
            f"{len(to_draw)} sets to draw ({needed} records)"
        raise DataError(
            f"splits: {what} = {needed} records "
            f"but the data set has {record_count - len(fixed)}{' left' if given else ''}; "
            "lower splits.members / splits.holdout"
        )
    taken = set(fixed)
    order = [index for index in np.random.default_rng(seed).permutation(record_count) if index not in taken]
    splits, start = {}, 0
    for name in SPLIT_NAMES:
        if name in given:
            splits[name] = given[name]
            continue
        count = sizes["members"] if name.endswith("members") else sizes["holdout"]
        splits[name] = sorted(int(index) for index in order[start : start + count])
        start += count
    return splits


GIVEN_SPLIT_KEYS = {"target_members_file": "target_members", "target_holdout_file": "target_holdout"}


def given_splits(splits_config: dict) -> dict[str, list[int]]:
    """The record sets an audit fixes by index file (``splits.target_members_file`` / ``target_holdout_file``)."""
    return {name: read_index_file(splits_config[key]) for key, name in GIVEN_SPLIT_KEYS.items() if key in splits_config}


def save_splits(path: str | Path, splits: dict[str, list[int]], data_fingerprint: str, record_count: int) -> None:
    from pfami.io import atomic_write_text

    atomic_write_text(
        path, json.dumps({"fingerprint": data_fingerprint, "record_count": record_count, "splits": splits}, indent=1)
    )


def load_splits(path: str | Path, images: np.ndarray) -> dict[str, list[int]]:
    """Read a split file, refusing it when it was drawn on other data."""
    content = json.loads(Path(path).read_text())
    if content["fingerprint"] != fingerprint(images):
        raise DataError(
            f"{path}: the split file was drawn on different data (fingerprint mismatch); "
            "delete it and rerun split_dataset"
        )
    return content["splits"]


def records_of(
    images: np.ndarray, splits: dict[str, list[int]], role: str, attacked_per_part: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The attacked records of one role: (record ids, images, is_member), members first.

    ``attacked_per_part`` keeps the first that many members and hold-outs (all when None)."""
    members = splits[f"{role}_members"][:attacked_per_part]
    holdout = splits[f"{role}_holdout"][:attacked_per_part]
    record_ids = np.array(members + holdout, dtype=np.int64)
    is_member = np.array([True] * len(members) + [False] * len(holdout))
    return record_ids, images[record_ids], is_member
