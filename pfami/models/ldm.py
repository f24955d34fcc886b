"""LDM: a latent diffusion model, a shared diffusers ``AutoencoderKL`` plus a ``UNet2DModel`` per role.

What is shared and why. As in Stable-Diffusion-style models the first stage (the autoencoder) is a
pre-trained component: it is trained once per experiment, on records that no attack targets
(outside all six split sets), and every role's model uses the same one. Membership is a property
of the latent U-Net's training set: each role (target, shadow, reference) trains its own latent
U-Net on the encoded latents of its members. Sharing the autoencoder keeps the three roles
comparable (their latents live in one space) and costs one training instead of three.

Encoding is deterministic: a record's latent is the posterior mean times ``scaling_factor``, which
is set after training to 1 / std of the training records' latents, so the U-Net sees latents of
unit variance, the scale its noise schedule assumes.

A trained autoencoder is a folder ``autoencoder/`` (diffusers ``save_pretrained``, safetensors)
plus ``loss_curve.csv`` and ``training.json`` (family ``autoencoder``). A trained LDM is a folder
``unet/`` + ``scheduler/`` as for a DDPM, plus a copy of the autoencoder's ``autoencoder/`` folder
and ``training.json`` naming family ``ldm``. A copy, not a path: the U-Net only makes sense with
the autoencoder whose latents it was trained on, so the folder stays self-contained when moved,
versioned by DVC, or when the shared autoencoder is retrained later (a few hundred kB).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

from pfami.io import atomic_directory
from pfami.models.ddpm import load_diffusion_parts, save_diffusion_parts, train_ddpm
from pfami.models.folders import CheckpointError, require_family, unloadable, write_training_record
from pfami.models.training import train_resumably, training_settings

AUTOENCODER_FOLDER = "autoencoder"
AUTOENCODER_FAMILY = "autoencoder"
# Records per encoder pass when encoding a training set; bounds memory, not results.
ENCODE_BATCH = 256


def build_autoencoder(image_size: int, channels: int, autoencoder_config: dict) -> AutoencoderKL:
    """An ``AutoencoderKL`` whose latent is 2^(levels - 1) times smaller than the image on each side."""
    widths = autoencoder_config["block_out_channels"]
    return AutoencoderKL(
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        block_out_channels=tuple(widths),
        layers_per_block=autoencoder_config.get("layers_per_block", 1),
        latent_channels=autoencoder_config["latent_channels"],
        norm_num_groups=min(32, min(widths)),
        sample_size=image_size,
        # Attention at the bottleneck costs more than it buys on tiny images.
        mid_block_add_attention=False,
    )


def latent_side(image_size: int, autoencoder_config: dict) -> int:
    return image_size // 2 ** (len(autoencoder_config["block_out_channels"]) - 1)


def _autoencoder_step_loss(kl_weight: float):
    """Reconstruction of a posterior draw (pixel MSE) plus ``kl_weight`` x KL to N(0, I) (summed per image)."""

    def step_loss(autoencoder: AutoencoderKL, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        posterior = autoencoder.encode(clean).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(clean.device)
        reconstruction = autoencoder.decode(posterior.mean + posterior.std * noise).sample
        return F.mse_loss(reconstruction, clean) + kl_weight * posterior.kl().mean()

    return step_loss


@torch.inference_mode()
def encode_latents(autoencoder: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """Latents [B, c, s, s] of images [B, C, S, S] in [-1, 1]: posterior mean x scaling_factor."""
    device = next(autoencoder.parameters()).device
    mean = autoencoder.encode(images.to(device)).latent_dist.mean
    return (mean * autoencoder.config.scaling_factor).float().cpu()


def encode_records(autoencoder: AutoencoderKL, images: np.ndarray) -> np.ndarray:
    """``encode_latents`` of a whole record set, in passes of ``ENCODE_BATCH``."""
    parts = [encode_latents(autoencoder, torch.from_numpy(images[start:start + ENCODE_BATCH]))
             for start in range(0, len(images), ENCODE_BATCH)]
    return torch.cat(parts).numpy()


def latent_decoder(autoencoder: AutoencoderKL) -> Callable[[torch.Tensor], torch.Tensor]:
    """Latents (scaled as ``encode_latents`` makes them) -> images in the autoencoder's pixel range."""
    return lambda latents: autoencoder.decode(latents / autoencoder.config.scaling_factor).sample


def train_autoencoder(images: np.ndarray, autoencoder_config: dict, seed: int, output_dir: str | Path,
                      state_path: str | Path, device: torch.device) -> list[float]:
    """Train the shared autoencoder on ``images`` [R, C, S, S] in [-1, 1] (resumably), set its scaling
    factor from their latents and save it to ``output_dir``; returns the per-step loss curve."""
    training = autoencoder_config["training"]
    settings = training_settings(images, autoencoder_config, training, seed)
    torch.manual_seed(seed)
    autoencoder = build_autoencoder(images.shape[-1], images.shape[1], autoencoder_config).to(device)
    loss_curve = train_resumably(autoencoder, _autoencoder_step_loss(autoencoder_config.get("kl_weight", 1e-6)),
                                 images, training, seed, settings, state_path, device)
    autoencoder.register_to_config(scaling_factor=1.0)
    latent_std = float(encode_records(autoencoder, images).std())
    if not np.isfinite(latent_std) or latent_std <= 0:
        raise FloatingPointError(f"the autoencoder's latents have standard deviation {latent_std}; "
                                 "lower model.autoencoder.training.learning_rate")
    autoencoder.register_to_config(scaling_factor=1.0 / latent_std)
    with atomic_directory(output_dir) as folder:
        autoencoder.save_pretrained(folder / AUTOENCODER_FOLDER, safe_serialization=True)
        write_training_record(folder, AUTOENCODER_FAMILY, loss_curve, {**settings, "scaling_factor": 1.0 / latent_std})
    Path(state_path).unlink(missing_ok=True)
    return loss_curve


def load_autoencoder(folder: str | Path, device: torch.device) -> AutoencoderKL:
    """The autoencoder of a trained-autoencoder folder or of an LDM folder (both hold ``autoencoder/``)."""
    folder = Path(folder)
    if not (folder / AUTOENCODER_FOLDER / "config.json").exists():
        raise CheckpointError(f"{folder}: no autoencoder (needs {AUTOENCODER_FOLDER}/config.json); "
                              "retrain it (delete the folder and rerun)")
    try:
        autoencoder = AutoencoderKL.from_pretrained(folder / AUTOENCODER_FOLDER, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as error:
        raise unloadable(folder, error) from None
    return autoencoder.to(device).eval()


def train_ldm(images: np.ndarray, model_config: dict, training: dict, seed: int, output_dir: str | Path,
              state_path: str | Path, device: torch.device, autoencoder_dir: str | Path) -> list[float]:
    """Train a latent U-Net on the latents of ``images`` (a role's members) under the shared autoencoder
    in ``autoencoder_dir``, and save the LDM folder (with a copy of the autoencoder) to ``output_dir``.

    Resumes like a DDPM; the resumable state is keyed by the latents, so a retrained autoencoder
    is never mixed with an old U-Net."""
    autoencoder_dir = Path(autoencoder_dir)
    require_family(autoencoder_dir, AUTOENCODER_FAMILY)
    latents = encode_records(load_autoencoder(autoencoder_dir, device), images)

    def save_ldm(folder_path: Path, unet: UNet2DModel, scheduler: DDPMScheduler, loss_curve: list[float],
                 settings: dict) -> None:
        # The DDPM default clips the predicted clean sample to [-1, 1] when sampling: a pixel-range
        # prior that would truncate unit-variance latents, so an LDM's scheduler does not clip.
        latent_scheduler = DDPMScheduler.from_config(scheduler.config, clip_sample=False)
        with atomic_directory(folder_path) as folder:
            save_diffusion_parts(folder, unet, latent_scheduler)
            shutil.copytree(autoencoder_dir / AUTOENCODER_FOLDER, folder / AUTOENCODER_FOLDER)
            write_training_record(folder, "ldm", loss_curve, settings)

    return train_ddpm(latents, model_config, training, seed, output_dir, state_path, device, save_model=save_ldm)


def load_ldm(model_dir: str | Path, device: torch.device) -> tuple[UNet2DModel, DDPMScheduler, AutoencoderKL]:
    """The latent U-Net, its training scheduler and the autoencoder of an LDM folder."""
    model_dir = Path(model_dir)
    require_family(model_dir, "ldm")
    unet, scheduler = load_diffusion_parts(model_dir, device, "an LDM")
    return unet, scheduler, load_autoencoder(model_dir, device)
