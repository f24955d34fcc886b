"""Writing outputs so that an interrupted job never leaves a file that looks finished."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextmanager
def atomic_directory(path: str | Path):
    """Yield a temporary folder beside ``path``; move it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield temporary
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def save_arrays(path: str | Path, **arrays) -> None:
    """``np.savez_compressed`` through a temporary file."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def load_arrays(path: str | Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load an .npz and check it holds ``required`` arrays, with finite floating values."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found; run the step that makes it first")
    with np.load(path, allow_pickle=False) as content:
        arrays = {name: content[name] for name in content.files}
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}; delete the file and rerun the step that makes it")
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(np.argwhere(~np.isfinite(array))[0][0])
            raise ValueError(f"{path}: array {name!r} has NaN or infinite values (first at record {bad}); rerun its step")
    return arrays


def write_scores(path: str | Path, roles: dict[str, dict[str, np.ndarray]]) -> None:
    """A scores CSV (``read_scores``' layout) from {role: {record_ids, is_member, scores}}, atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w") as handle:
            handle.write("record_id,role,is_member,score\n")
            for role, rows in roles.items():
                for record_id, is_member, score in zip(rows["record_ids"], rows["is_member"], rows["scores"]):
                    handle.write(f"{record_id},{role},{int(is_member)},{score:.9g}\n")


def read_scores(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """A scores CSV as {role: {record_ids, is_member, scores}}."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found; run the attack that makes it first")
    table = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    if table.dtype.names != ("record_id", "role", "is_member", "score"):
        raise ValueError(f"{path}: expected columns record_id,role,is_member,score; rerun the attack")
    return {role: {"record_ids": table["record_id"][table["role"] == role].astype(np.int64),
                   "is_member": table["is_member"][table["role"] == role].astype(bool),
                   "scores": table["score"][table["role"] == role].astype(np.float64)}
            for role in np.unique(table["role"])}
