"""Target-model families: ``ddpm`` (diffusers U-Net + DDPMScheduler), ``vae`` (our conv VAE) and
``ldm`` (a shared diffusers AutoencoderKL + a latent U-Net per role).

Every family trains resumably through ``pfami.models.training`` and saves a folder whose
``training.json`` names the family, so later steps can dispatch on it and refuse a mismatch.
Torch-free at import, like ``pfami.config``: the Snakefile imports this package for the family
names, so the family modules (torch, diffusers) are imported where they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pfami.models.folders import CheckpointError, model_family

if TYPE_CHECKING:
    import numpy as np
    import torch

FAMILIES = ("ddpm", "vae", "ldm")
# Families whose models predict noise, so they can be sampled with the DDPM / DDIM / PNDM schedulers.
DIFFUSION_FAMILIES = ("ddpm", "ldm")


def train_model(images: np.ndarray, model_config: dict, training: dict, seed: int, output_dir: str | Path,
                state_path: str | Path, device: torch.device, autoencoder_dir: str | Path | None = None) -> list[float]:
    """Train the family ``model_config['family']`` names; returns the per-step loss curve.

    ``autoencoder_dir``: the experiment's trained autoencoder, which an ``ldm`` model needs."""
    family = model_config["family"]
    if family == "ddpm":
        from pfami.models.ddpm import train_ddpm
        return train_ddpm(images, model_config, training, seed, output_dir, state_path, device)
    if family == "vae":
        from pfami.models.vae import train_vae
        return train_vae(images, model_config, training, seed, output_dir, state_path, device)
    if family == "ldm":
        if autoencoder_dir is None:
            raise ValueError("model.family ldm: the shared autoencoder is needed (--autoencoder); train it first")
        from pfami.models.ldm import train_ldm
        return train_ldm(images, model_config, training, seed, output_dir, state_path, device, autoencoder_dir)
    raise ValueError(f"model.family: unknown family {family!r}; choose from {list(FAMILIES)}")


def folder_family(model_dir: str | Path, expected: str | None = None) -> str:
    """The family of a model folder (``training.json``; a diffusers folder without one is a DDPM).

    With ``expected``, a folder of another family is refused with a one-line ``CheckpointError``;
    so is a missing folder."""
    if not Path(model_dir).is_dir():
        raise CheckpointError(f"{model_dir}: no such model folder; train the model first or fix the path")
    family = model_family(model_dir) or "ddpm"
    if expected is not None and family != expected:
        raise CheckpointError(f"{model_dir}: holds a {family} model but the experiment's model.family is {expected}; "
                              "retrain the model (delete the folder) or fix model.family")
    return family
