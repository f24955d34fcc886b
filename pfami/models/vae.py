"""VAE: a small convolutional variational auto-encoder with a N(0, I) prior, trained resumably.

Why our own network rather than diffusers' ``AutoencoderKL``: PFAMI's VAE proxy is a per-image
ELBO of a generative model whose prior is a plain N(0, I) over a flat latent vector, so that the
ELBO is a bound on log p(x). ``AutoencoderKL`` is built as the first stage of a latent diffusion
model: its latent is a spatial feature map whose KL term is only a weak regulariser (the prior of
the full model is the diffusion model on top), and its smallest configuration is far larger than
the 16 px images this pipeline trains on a CPU in seconds.

Pipeline images are in [-1, 1]; the VAE sees them in [0, 1] (as in the paper) and its decoder ends
in a sigmoid. The negative ELBO of one latent draw z = mu + sigma * eps is
``sum_pixels (decoder(z) - x)^2 + KL(N(mu, sigma^2) || N(0, I))``; lower = more probable.

A trained model is a folder ``vae/config.json`` + ``vae/model.safetensors`` (no pickle: loading
never executes code) plus ``loss_curve.csv`` and ``training.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from pfami.io import atomic_directory
from pfami.models.folders import CheckpointError, require_family, unloadable, write_training_record
from pfami.models.training import train_resumably, training_settings

CONFIG_KEYS = ("image_size", "channels", "block_out_channels", "latent_dim")


class ConvVAE(nn.Module):
    """Stride-2 convolutions (one per entry of ``block_out_channels``) down to a flat latent, and
    their transposes back up."""

    def __init__(self, image_size: int, channels: int, block_out_channels: list[int], latent_dim: int):
        super().__init__()
        levels = len(block_out_channels)
        if image_size % 2 ** levels:
            raise ValueError(f"image size {image_size} is not divisible by 2^{levels} (one halving per channel entry)")
        self.config = {"image_size": image_size, "channels": channels,
                       "block_out_channels": list(block_out_channels), "latent_dim": latent_dim}
        self.bottom_side, self.bottom_channels = image_size // 2 ** levels, block_out_channels[-1]
        flat = self.bottom_channels * self.bottom_side ** 2
        encoder, previous = [], channels
        for width in block_out_channels:
            encoder += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.SiLU()]
            previous = width
        self.encoder = nn.Sequential(*encoder, nn.Flatten())
        self.to_moments = nn.Linear(flat, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        decoder = []
        widths = list(reversed(block_out_channels))
        for width, next_width in zip(widths, widths[1:] + [widths[-1]]):
            decoder += [nn.SiLU(), nn.ConvTranspose2d(width, next_width, 4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*decoder, nn.SiLU(), nn.Conv2d(widths[-1], channels, 3, padding=1), nn.Sigmoid())

    @property
    def latent_dim(self) -> int:
        return self.config["latent_dim"]

    def encode(self, unit_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of images in [0, 1]."""
        mean, log_variance = self.to_moments(self.encoder(unit_images)).chunk(2, dim=1)
        return mean, log_variance.clamp(-30.0, 20.0)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        bottom = self.from_latent(latent).view(-1, self.bottom_channels, self.bottom_side, self.bottom_side)
        return self.decoder(bottom)

    def negative_elbo(self, images: torch.Tensor, latent_noise: torch.Tensor) -> torch.Tensor:
        """One-sample negative ELBO [B] of ``images`` in [-1, 1], with the given N(0, I) draws [B, latent_dim]."""
        unit = (images + 1.0) / 2.0
        mean, log_variance = self.encode(unit)
        latent = mean + (0.5 * log_variance).exp() * latent_noise
        reconstruction_error = (self.decode(latent) - unit).pow(2).flatten(1).sum(dim=1)
        kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance).sum(dim=1)
        return reconstruction_error + kl


def build_vae(image_size: int, channels: int, model_config: dict) -> ConvVAE:
    return ConvVAE(image_size, channels, model_config["block_out_channels"], model_config["latent_dim"])


def _elbo_step_loss(vae: ConvVAE, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # DP-SGD passes the VAE inside Opacus' per-sample-gradient wrapper, whose hooks sit on the layers:
    # the VAE's own methods run on the module itself.
    vae = getattr(vae, "_module", vae)
    noise = torch.randn((len(clean), vae.latent_dim), generator=generator).to(clean.device)
    return vae.negative_elbo(clean, noise).mean()


def train_vae(images: np.ndarray, model_config: dict, training: dict, seed: int, output_dir: str | Path,
              state_path: str | Path, device: torch.device) -> list[float]:
    """Train a VAE on ``images`` [R, C, S, S] in [-1, 1], save it to ``output_dir``; resumes like the DDPM."""
    settings = training_settings(images, model_config, training, seed)
    torch.manual_seed(seed)
    vae = build_vae(images.shape[-1], images.shape[1], model_config).to(device)
    loss_curve = train_resumably(vae, _elbo_step_loss, images, training, seed, settings, state_path, device)
    save_vae(output_dir, vae, loss_curve, settings)
    Path(state_path).unlink(missing_ok=True)
    return loss_curve


def save_vae(output_dir: str | Path, vae: ConvVAE, loss_curve: list[float], settings: dict) -> None:
    with atomic_directory(output_dir) as folder:
        (folder / "vae").mkdir()
        (folder / "vae" / "config.json").write_text(json.dumps(vae.config, indent=1))
        weights = {name: tensor.detach().cpu().contiguous() for name, tensor in vae.state_dict().items()}
        save_file(weights, folder / "vae" / "model.safetensors")
        write_training_record(folder, "vae", loss_curve, settings)


def load_vae(model_dir: str | Path, device: torch.device) -> ConvVAE:
    model_dir = Path(model_dir)
    require_family(model_dir, "vae")
    config_path, weights_path = model_dir / "vae" / "config.json", model_dir / "vae" / "model.safetensors"
    if not config_path.exists() or not weights_path.exists():
        raise CheckpointError(f"{model_dir}: not a VAE folder (needs vae/config.json and vae/model.safetensors); "
                              "retrain the model")
    try:
        config = json.loads(config_path.read_text())
        vae = ConvVAE(**{key: config[key] for key in CONFIG_KEYS})
        vae.load_state_dict(load_file(weights_path))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as error:
        raise unloadable(model_dir, error) from None
    return vae.to(device).eval()
