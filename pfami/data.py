"""Data sets and the six disjoint splits.

Digits are small and kept in memory as float32. Every other source (an image folder,
Tiny-ImageNet, CIFAR-10's python batches, an .npz array) is preprocessed once into a
memory-mapped uint8 cache ``results/cache/{source}-{S}px-{C}ch-{key}.npy`` with a JSON sidecar,
so a 200k-image data set is never decoded into memory at once; ``to_model_range`` converts just
the records a step needs to float32 [-1, 1]. ``make_splits`` draws target / shadow / reference x
member / hold-out index sets, and the split file records a fingerprint of the data so that it is
never paired with other data.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

ROLES = ("target", "shadow", "reference")
# The roles whose records are attacked: the target's, and the shadow's that attacks are fitted on.
ATTACKED_ROLES = ("target", "shadow")
# How a record set's reference model is chosen (``reference_model``): "own", the paper's, a third model
# trained on its own disjoint split; "crossed", the other attacked role's model, which never saw the records
# either (the shadow model calibrates the target's records, the target model the shadow's): one model fewer.
REFERENCE_MODELS = ("own", "crossed")
SPLIT_NAMES = tuple(f"{role}_{part}" for role in ROLES for part in ("members", "holdout"))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SOURCES = ("digits", "image_folder", "tiny_imagenet", "cifar10", "npz")
SPLIT_MODES = ("random", "contiguous")
DEFAULT_CACHE_DIR = Path("results/cache")
# Bump when preprocessing changes, so that caches written by older code are rebuilt.
CACHE_FORMAT = 1
CIFAR10_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6)) + ("test_batch",)
# 16-bit and float pixels would be silently clipped by a conversion to 8 bits.
HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")
# Records per chunk when hashing; keeps memory bounded on a memory-mapped cache.
FINGERPRINT_CHUNK_BYTES = 64 * 2**20

log = logging.getLogger(__name__)


def reference_role(experiment: dict, records: str) -> str:
    """The role whose model calibrates the records of ``records`` (an attacked role) in ``experiment``."""
    if experiment.get("reference_model", "own") == "own":
        return "reference"
    return {"target": "shadow", "shadow": "target"}[records]


def trained_roles(experiment: dict) -> tuple[str, ...]:
    """The roles whose models an experiment has: a crossed reference needs no third one."""
    return ROLES if experiment.get("reference_model", "own") == "own" else ATTACKED_ROLES


class DataError(ValueError):
    """Bad or missing input data; the message names the file or key and what to do."""


# scikit-learn's copy of the digits (the 1797 rows of 64 pixel values and a label), which
# sklearn.datasets.load_digits reads. Read here without importing scikit-learn: the import is about a
# tenth of a model step's CPU in the tiny runs (0.6 of 6 CPU-s), and no model step needs anything else
# from it. tests/test_data.py holds the images equal to load_digits()'s.
DIGITS_FILE = Path("datasets", "data", "digits.csv.gz")


def digits_pixels() -> np.ndarray:
    """The 1797 digits as float64 [1797, 8, 8], values 0..16: ``load_digits().images``."""
    package = importlib.util.find_spec("sklearn")  # finds the package without running its __init__
    path = Path(package.submodule_search_locations[0], DIGITS_FILE) if package else None
    if path is None or not path.is_file():  # another scikit-learn layout: its own loader
        from sklearn.datasets import load_digits

        return load_digits().images
    with gzip.open(path, "rt") as file:
        return np.loadtxt(file, delimiter=",")[:, :-1].reshape(-1, 8, 8)


def load_digits_images(image_size: int) -> np.ndarray:
    """scikit-learn's 1797 8x8 digits, resized (bilinear) to ``image_size`` and scaled to [-1, 1]."""
    digits = digits_pixels().astype(np.float32) / 16.0  # values 0..16
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


def preprocess_image(image: Image.Image, name: str, image_size: int, channels: int, resize: bool = True) -> np.ndarray:
    """One image as uint8 [C, S, S]: converted to grey or RGB, centre-cropped to a square and resized
    (bilinear); ``resize=False`` demands that it already is S x S. ``name`` is for error messages."""
    if image.mode in HIGH_DEPTH_MODES:
        raise DataError(f"{name}: image mode {image.mode} (16-bit or float pixels) cannot be read as 8-bit; "
                        "convert it to an 8-bit grey or RGB image")
    image = image.convert({1: "L", 3: "RGB"}[channels])
    if resize:
        image = _centre_square(image).resize((image_size, image_size), Image.BILINEAR)
    elif image.size != (image_size, image_size):
        raise DataError(
            f"{name}: image is {image.size[0]}x{image.size[1]} but data.image_size is {image_size} and "
            "data.resize is false; set data.resize: true or use images of one size"
        )
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _read_image_file(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here with its name
            return opened.copy()
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: cannot read image ({error}); remove or replace the file") from None


def _image_paths(folder: Path, key: str = "data.path") -> list[Path]:
    """``key`` is the config key that named the folder, for error messages."""
    if not folder.is_dir():
        raise DataError(f"{key}: image folder {folder} does not exist; point {key} at a folder of PNG/JPEG images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(f"{key}: image folder {folder} holds no PNG/JPEG images; add images or fix the path")
    return paths


def _files_as_records(paths: list[Path]) -> tuple[int, Iterator[tuple[str, Image.Image]]]:
    return len(paths), ((str(path), _read_image_file(path)) for path in paths)


# A source: (root folder, the files whose names, sizes and mtimes key the cache, and a function
# that gives the record count and an iterator of (name for messages, decoded image)).
Source = tuple[Path, list[Path], Callable[[], tuple[int, Iterator[tuple[str, Image.Image]]]]]


def _image_folder_source(folder: Path) -> Source:
    paths = _image_paths(folder)
    return folder, paths, lambda: _files_as_records(paths)


def _tiny_imagenet_source(root: Path) -> Source:
    """Tiny-ImageNet's train/<wnid>/images/*.JPEG (100,000 images, sorted by class and name) followed by
    val/images/*.JPEG (10,000, sorted by name): 110,000 records. test/ has no labels and is not used."""
    train, val = root / "train", root / "val" / "images"
    for folder in (train, val):
        if not folder.is_dir():
            raise DataError(f"data.path: {root} is not a Tiny-ImageNet folder ({folder} is missing); "
                            "point data.path at the folder holding train/ and val/")
    paths = sorted(p for p in train.glob("*/images/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    paths += sorted(p for p in val.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"data.path: Tiny-ImageNet folder {root} holds no JPEG images under train/*/images or val/images")
    return root, paths, lambda: _files_as_records(paths)


def _read_cifar10_batch(path: Path) -> np.ndarray:
    """One CIFAR-10 python batch as uint8 [N, 32, 32, 3]. The batches are pickles, so only read
    them from a folder you trust (your own download)."""
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = batch[b"data"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(error).__name__}: {error}); "
                        "replace it with the file from cifar-10-python.tar.gz") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: b'data' should be uint8 [N, 3072] but is {getattr(data, 'dtype', type(data))} "
                        f"{shape}; replace it with the file from cifar-10-python.tar.gz")
    # Each row holds the red, green and blue planes of a 32 x 32 image, one after the other.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _cifar10_source(root: Path) -> Source:
    """The 50,000 training images (data_batch_1..5) followed by the 10,000 test images: 60,000 records."""
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    paths = [folder / name for name in CIFAR10_BATCHES]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise DataError(f"data.path: {folder} lacks the CIFAR-10 batches {missing}; point data.path at the folder "
                        "holding cifar-10-batches-py (as torchvision writes it)")

    def records():
        count = sum(len(_read_cifar10_batch(path)) for path in paths)
        return count, ((f"{path}[{index}]", Image.fromarray(image))
                       for path in paths for index, image in enumerate(_read_cifar10_batch(path)))

    return folder, paths, records


def npz_images_as_uint8(images: np.ndarray, name: str) -> np.ndarray:
    """An ``images`` array as uint8 [N, H, W, C]: accepts [N, H, W], [N, H, W, C] or [N, C, H, W] with
    C in {1, 3} (channels last when the last axis is 1 or 3), as uint8 or as floats in [0, 1]."""
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim == 4 and images.shape[-1] not in (1, 3) and images.shape[1] in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise DataError(f"{name}: 'images' has shape {images.shape}; expected [N, H, W], [N, H, W, C] or "
                        "[N, C, H, W] with C 1 or 3 and N > 0")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind != "f":
        raise DataError(f"{name}: 'images' has dtype {images.dtype}; expected uint8 or floats in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if not (np.isfinite(low) and np.isfinite(high) and low >= 0.0 and high <= 1.0):
        raise DataError(f"{name}: float 'images' must lie in [0, 1] but range over [{low}, {high}]; "
                        "rescale them or store uint8")
    return np.round(images * 255.0).astype(np.uint8)


def _npz_source(path: Path) -> Source:
    if not path.is_file():
        raise DataError(f"data.path: {path} does not exist; point data.path at an .npz file with an 'images' array")

    def records():
        # npz members cannot be memory-mapped: the array is read whole once, while the cache is built.
        try:
            with np.load(path, allow_pickle=False) as content:
                if "images" not in content.files:
                    raise DataError(f"{path}: no 'images' array (it holds {content.files}); save the images as 'images'")
                images = content["images"]
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: cannot read the .npz ({error})") from None
        images = npz_images_as_uint8(images, str(path))
        return len(images), ((f"{path}[{index}]", Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image))
                             for index, image in enumerate(images))

    return path.parent, [path], records


def _source(data_config: dict) -> Source:
    source = data_config["source"]
    if "path" not in data_config:
        raise DataError(f"data.path: the {source} source needs data.path")
    path = Path(data_config["path"]).expanduser().resolve()
    builders = {"image_folder": _image_folder_source, "tiny_imagenet": _tiny_imagenet_source,
                "cifar10": _cifar10_source, "npz": _npz_source}
    if source not in builders:
        raise DataError(f"data.source: unknown source {source!r}; use one of {', '.join(SOURCES)}")
    return builders[source](path)


def cache_key(data_config: dict, root: Path, files: list[Path]) -> str:
    """SHA-256 over the source, its path, every file's name, size and mtime, and the preprocessing:
    a changed, added or removed file, or other preprocessing, gives another key."""
    digest = hashlib.sha256(json.dumps({
        "format": CACHE_FORMAT, "source": data_config["source"], "path": str(Path(data_config["path"]).expanduser().resolve()),
        "image_size": data_config["image_size"], "channels": data_config["channels"],
        "resize": data_config.get("resize", True)}, sort_keys=True).encode())
    for file in files:
        status = file.stat()
        digest.update(f"{file.relative_to(root)}\t{status.st_size}\t{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_images(data_config: dict, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> np.ndarray:
    """The preprocessed images as a read-only uint8 memmap [R, C, S, S], built on first use (and
    whenever the source or the preprocessing changed) by decoding one image at a time."""
    from pfami.io import atomic_path, atomic_write_text

    root, files, records = _source(data_config)
    key = cache_key(data_config, root, files)
    size, channels = data_config["image_size"], data_config["channels"]
    stem = f"{data_config['source']}-{size}px-{channels}ch"
    cache_dir = Path(cache_dir)
    array_path, sidecar_path = cache_dir / f"{stem}-{key[:16]}.npy", cache_dir / f"{stem}-{key[:16]}.json"
    if sidecar_path.exists() and array_path.exists():
        try:
            sidecar = json.loads(sidecar_path.read_text())
            images = np.load(array_path, mmap_mode="r")
            if sidecar.get("key") == key and list(images.shape) == sidecar.get("shape"):
                return images
        except (OSError, ValueError):
            log.info("the cache %s is damaged; rebuilding it", array_path)  # then fall through
    _remove_stale_caches(cache_dir, stem, data_config, key)
    count, decoded = records()
    log.info("building the %s cache %s: %d images", data_config["source"], array_path, count)
    with atomic_path(array_path) as temporary:
        cache = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(count, channels, size, size))
        written = 0
        for written, (name, image) in enumerate(decoded, start=1):
            cache[written - 1] = preprocess_image(image, name, size, channels, data_config.get("resize", True))
            if written % 4096 == 0:
                cache.flush()  # bounded dirty pages: the cache may be larger than memory
        if written != count:
            raise DataError(f"data.path: {root} gave {written} images but {count} were counted; is it changing?")
        cache.flush()
        del cache
    # The sidecar is written last: a cache without it is incomplete and is rebuilt.
    atomic_write_text(sidecar_path, json.dumps({
        "key": key, "source": data_config["source"], "path": str(Path(data_config["path"]).expanduser().resolve()),
        "image_size": size, "channels": channels, "resize": data_config.get("resize", True),
        "shape": [count, channels, size, size], "files": len(files)}, indent=1))
    return np.load(array_path, mmap_mode="r")


def _remove_stale_caches(cache_dir: Path, stem: str, data_config: dict, key: str) -> None:
    """Delete earlier caches of the same source path and preprocessing (the source has changed since);
    never one under ``key``, which a concurrent job may have just finished."""
    path = str(Path(data_config["path"]).expanduser().resolve())
    for sidecar_path in cache_dir.glob(f"{stem}-*.json"):
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (sidecar.get("path") == path and sidecar.get("resize") == data_config.get("resize", True)
                and sidecar.get("key") != key):
            log.info("removing the stale cache %s: its source has changed", sidecar_path.with_suffix(".npy"))
            sidecar_path.with_suffix(".npy").unlink(missing_ok=True)
            sidecar_path.unlink(missing_ok=True)


def to_model_range(images: np.ndarray, indices=None) -> np.ndarray:
    """Float32 [-1, 1] copies of ``images[indices]`` (all when None): uint8 pixels are scaled,
    float images (digits) are already in range and pass through."""
    selected = np.asarray(images) if indices is None else images[np.asarray(indices, dtype=np.int64)]
    if selected.dtype == np.uint8:
        return ((selected.astype(np.float32) / 255.0) * 2.0 - 1.0).astype(np.float32)
    return np.asarray(selected, dtype=np.float32)


def image_folder_pixels(folder: str | Path, image_size: int, channels: int, resize: bool = True,
                        key: str = "data.path") -> np.ndarray:
    """Every PNG/JPEG under ``folder`` (recursive, sorted by path), centre-cropped to a square and resized
    to ``image_size``, decoded into memory without a cache, as uint8 [R, C, S, S]. Errors name ``key``
    (the config key that named the folder) and the folder or file."""
    count, decoded = _files_as_records(_image_paths(Path(folder), key))
    try:
        return np.stack([preprocess_image(image, name, image_size, channels, resize) for name, image in decoded])
    except DataError as error:
        raise DataError(f"{key}: {error}") from None


def load_image_folder(folder: str | Path, image_size: int, channels: int, resize: bool = True) -> np.ndarray:
    """``image_folder_pixels`` as float32 [-1, 1]."""
    return to_model_range(image_folder_pixels(folder, image_size, channels, resize))


class AppendedImages:
    """The data set's images followed by an audit's given records, indexed like one array [R, C, S, S]
    (integer arrays and slices) without copying the data set, which may be a memory-mapped cache
    larger than memory. ``appended_sets`` maps each split name to the indices its records got."""

    def __init__(self, base: np.ndarray, appended: dict[str, np.ndarray]):
        self.base = base
        self.appended = np.concatenate([images.astype(base.dtype, copy=False) for images in appended.values()])
        self.appended_sets, start = {}, len(base)
        for name, images in appended.items():
            self.appended_sets[name] = list(range(start, start + len(images)))
            start += len(images)
        self.shape = (start, *base.shape[1:])
        self.dtype = base.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        indices = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        if indices.ndim == 0:
            return self[indices[None]][0]
        selected = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        in_base = indices < len(self.base)
        selected[in_base] = self.base[indices[in_base]]
        selected[~in_base] = self.appended[indices[~in_base] - len(self.base)]
        return selected

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.concatenate([np.asarray(self.base), self.appended]).astype(dtype or self.dtype, copy=False)


def open_images(data_config: dict, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> np.ndarray | AppendedImages:
    """The images an experiment's ``data`` config names, [R, C, S, S]: float32 in [-1, 1] for digits, a
    uint8 memmap of the cache for every other source. Convert the records you need with ``to_model_range``.

    An audit's image folders (``given_folders``, see ``with_given_folders``) are decoded with the
    data's preprocessing and appended as records after the data set's own (``AppendedImages``)."""
    source = data_config["source"]
    if source == "digits":
        if data_config.get("channels", 1) != 1:
            raise DataError("data.channels: the digits data set is grey; set data.channels: 1")
        images = load_digits_images(data_config["image_size"])
    else:
        images = cached_images(data_config, cache_dir)
    given_folders = data_config.get("given_folders") or {}
    if not given_folders:
        return images
    appended = {}
    # In GIVEN_FOLDER_KEYS' order, not the mapping's: the record indices must not depend on key order.
    for key in [key for key in GIVEN_FOLDER_KEYS if key in given_folders]:
        pixels = image_folder_pixels(given_folders[key], data_config["image_size"], data_config["channels"],
                                     data_config.get("resize", True), key=f"splits.{key}")
        appended[GIVEN_FOLDER_KEYS[key]] = pixels if images.dtype == np.uint8 else to_model_range(pixels)
    return AppendedImages(images, appended)


def load_dataset(data_config: dict, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> np.ndarray:
    """All the images an experiment's ``data`` config names, as float32 [R, C, S, S] in [-1, 1]. Not
    for checking a split file (its fingerprint is of ``open_images``' array): use ``open_split_data``."""
    return to_model_range(open_images(data_config, cache_dir))


def fingerprint(images: np.ndarray) -> str:
    """SHA-256 over the shape and the bytes of the preprocessed images, read in chunks so that a
    memory-mapped cache is never loaded whole. Give it the images as ``open_images`` returns them
    (uint8 for every file-based source): a float32 copy has other bytes. The steps after the split
    get them from ``open_split_data``, which checks the split file with this same array."""
    digest = hashlib.sha256(str(images.shape).encode())
    rows = max(1, FINGERPRINT_CHUNK_BYTES // max(1, images[:1].nbytes))
    for start in range(0, len(images), rows):
        digest.update(np.ascontiguousarray(images[start : start + rows]).tobytes())
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


def make_splits(record_count: int, sizes: dict, seed: int,
                given: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Six disjoint index sets of ``sizes["members"]`` / ``sizes["holdout"]`` records per role.

    ``sizes["mode"]`` is ``random`` (default: drawn without replacement with ``seed``) or
    ``contiguous`` (consecutive index ranges in the order target members, target hold-outs, shadow
    members, ...: the authors' CelebA layout, target [0, 50k) / [50k, 60k) and so on).
    ``given`` fixes some sets (e.g. the members and non-members of a target model trained
    elsewhere); the others are drawn from the records left."""
    mode = sizes.get("mode", "random")
    if mode not in SPLIT_MODES:
        raise DataError(f"splits.mode: unknown mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
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
    candidates = np.arange(record_count) if mode == "contiguous" else np.random.default_rng(seed).permutation(record_count)
    order = [index for index in candidates if index not in taken]
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
# The alternative to each index file: a folder of images, appended to the data set as extra records.
GIVEN_FOLDER_KEYS = {"target_members_folder": "target_members", "target_holdout_folder": "target_holdout"}


def with_given_folders(data_config: dict, splits_config: dict) -> dict:
    """The ``data`` section every step reads: with an audit's ``splits.*_folder`` keys under
    ``given_folders``, so that every step appends the same records and the data fingerprint agrees."""
    folders = {key: splits_config[key] for key in GIVEN_FOLDER_KEYS if key in splits_config}
    return {**data_config, "given_folders": folders} if folders else dict(data_config)


def given_splits(splits_config: dict, images: np.ndarray | AppendedImages) -> dict[str, list[int]]:
    """The record sets an audit fixes: by index file (``splits.target_members_file`` / ``target_holdout_file``)
    or by image folder (the indices ``open_images`` gave the folder's records)."""
    given = {name: read_index_file(splits_config[key]) for key, name in GIVEN_SPLIT_KEYS.items() if key in splits_config}
    appended_sets = images.appended_sets if isinstance(images, AppendedImages) else {}
    for key, name in GIVEN_FOLDER_KEYS.items():
        if key in splits_config:
            if name not in appended_sets:
                raise DataError(f"splits.{key}: the data section lacks given_folders.{key}; pass the data section "
                                "through pfami.data.with_given_folders")
            given[name] = appended_sets[name]
    return given


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


def open_split_data(data_config: dict, splits_file: str | Path,
                    cache_dir: str | Path = DEFAULT_CACHE_DIR) -> tuple[np.ndarray | AppendedImages, dict[str, list[int]]]:
    """The one way a step after ``split_dataset`` opens its data: (the images as ``open_images`` gives
    them, the split sets), the split file checked against the fingerprint of that same array, the one
    ``split_dataset`` recorded. Convert the records a step needs with ``records_of`` / ``to_model_range``."""
    images = open_images(data_config, cache_dir)
    return images, load_splits(splits_file, images)


def records_outside_splits(splits: dict[str, list[int]], record_count: int, count: int, seed: int) -> np.ndarray:
    """``count`` indices (sorted, drawn with ``seed``) of records in none of the six split sets: records
    that no attack targets, for a component every role shares (an LDM's autoencoder)."""
    used = {index for indices in splits.values() for index in indices}
    free = np.array([index for index in range(record_count) if index not in used], dtype=np.int64)
    if len(free) < count:
        raise DataError(f"model.autoencoder.training_records: {count} records asked for but only {len(free)} of "
                        f"{record_count} lie outside the six splits; lower it or splits.members / splits.holdout")
    return np.sort(np.random.default_rng(seed).permutation(free)[:count])


def records_of(
    images: np.ndarray, splits: dict[str, list[int]], role: str, attacked_per_part: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The attacked records of one role: (record ids, float32 images in [-1, 1], is_member), members first.

    ``attacked_per_part`` keeps the first that many members and hold-outs (all when None)."""
    members = splits[f"{role}_members"][:attacked_per_part]
    holdout = splits[f"{role}_holdout"][:attacked_per_part]
    record_ids = np.array(members + holdout, dtype=np.int64)
    is_member = np.array([True] * len(members) + [False] * len(holdout))
    return record_ids, to_model_range(images, record_ids), is_member
