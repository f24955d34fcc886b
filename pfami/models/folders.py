"""The files of a trained model folder that say what it is, readable without torch.

Every family's folder holds ``training.json`` (naming the family) and ``loss_curve.csv``; the
workflow's light steps (figures, the loss table, family checks) read them without loading a
network, so this module imports no deep-learning library.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A model folder that is missing, truncated or of another model family."""


def unloadable(model_dir: str | Path, error: Exception) -> CheckpointError:
    """The one-line error for a model folder whose files exist but cannot be loaded (truncated, corrupt)."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CheckpointError(f"{model_dir}: cannot load the model ({first_line}); retrain it or restore the folder")


def write_training_record(folder: Path, family: str, loss_curve: list[float], settings: dict) -> None:
    """``loss_curve.csv`` and ``training.json`` (which names the family) inside a model folder."""
    lines = ["step,loss"] + [f"{step + 1},{loss:.6f}" for step, loss in enumerate(loss_curve)]
    (folder / "loss_curve.csv").write_text("\n".join(lines) + "\n")
    (folder / "training.json").write_text(json.dumps({"family": family, **settings}, indent=1))


def model_family(model_dir: str | Path) -> str | None:
    """The family a model folder's ``training.json`` names; None when there is no such file
    (e.g. a diffusers folder trained elsewhere)."""
    record = Path(model_dir) / "training.json"
    if not record.exists():
        return None
    try:
        return json.loads(record.read_text())["family"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"{record}: unreadable or names no family; retrain the model") from None


def require_family(model_dir: str | Path, family: str) -> None:
    """Refuse a folder whose ``training.json`` names another family, before trying to load it."""
    found = model_family(model_dir)
    if found is not None and found != family:
        raise CheckpointError(f"{model_dir}: holds a {found} model, not a {family} model; "
                              f"set model.family: {found} or retrain the model")


def read_loss_curve(model_dir: str | Path) -> np.ndarray:
    """The per-step training loss; empty for a model trained elsewhere (``model.pretrained``)."""
    lines = (Path(model_dir) / "loss_curve.csv").read_text().split()[1:]
    return np.array([float(line.split(",")[1]) for line in lines])
