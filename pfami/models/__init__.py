"""Target-model families: ``ddpm`` (diffusers U-Net + DDPMScheduler) and ``vae`` (our conv VAE).

Every family trains resumably through ``pfami.models.training`` and saves a folder whose
``training.json`` names the family, so later steps can dispatch on it and refuse a mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pfami.models.folders import CheckpointError, model_family

if TYPE_CHECKING:
    import numpy as np
    import torch

FAMILIES = ("ddpm", "vae")
DIFFUSION_FAMILIES = ("ddpm",)


def train_model(images: np.ndarray, model_config: dict, training: dict, seed: int, output_dir: str | Path,
                state_path: str | Path, device: torch.device) -> list[float]:
    """Train the family ``model_config['family']`` names; returns the per-step loss curve."""
    # Imported here, not at the top: the light steps that only read a folder's family (figures,
    # the loss table) would otherwise spend seconds importing torch and diffusers.
    from pfami.models.ddpm import train_ddpm
    from pfami.models.vae import train_vae

    trainers = {"ddpm": train_ddpm, "vae": train_vae}
    family = model_config["family"]
    if family not in trainers:
        raise ValueError(f"model.family: unknown family {family!r}; choose from {list(FAMILIES)}")
    return trainers[family](images, model_config, training, seed, output_dir, state_path, device)


def folder_family(model_dir: str | Path, expected: str | None = None) -> str:
    """The family of a model folder (``training.json``; a diffusers folder without one is a DDPM).

    With ``expected``, a folder of another family is refused with a one-line ``CheckpointError``."""
    family = model_family(model_dir) or "ddpm"
    if expected is not None and family != expected:
        raise CheckpointError(f"{model_dir}: holds a {family} model but the experiment's model.family is {expected}; "
                              "retrain the model (delete the folder) or fix model.family")
    return family
