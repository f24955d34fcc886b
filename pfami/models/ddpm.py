"""DDPM: a diffusers ``UNet2DModel`` with a ``DDPMScheduler``, trained resumably.

A trained model is a folder ``unet/`` + ``scheduler/`` (diffusers ``save_pretrained``,
safetensors) plus ``loss_curve.csv`` and ``training.json``. The resumable training state
(step, model, optimiser, random state, loss curve so far, EMA weights and fp16 gradient scaler when
used) lives in a separate file that is saved every ``checkpoint_every`` steps and removed when
training ends (see ``pfami.models.training``). With ``training.ema_decay`` set, the saved model
holds the EMA weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from pfami.io import atomic_directory
from pfami.models.folders import CheckpointError, require_family, unloadable, write_training_record
from pfami.models.training import StepLoss, train_resumably, training_settings

# (output folder, unet, scheduler, loss curve, settings) -> None: how a trained model is saved.
ModelSaver = Callable[[Path, UNet2DModel, DDPMScheduler, list[float], dict], None]


def build_unet(image_size: int, channels: int, block_out_channels: list[int], layers_per_block: int,
               attention_levels: list[int]) -> UNet2DModel:
    """A UNet2DModel whose levels listed in ``attention_levels`` (0 = highest resolution) use attention."""
    levels = range(len(block_out_channels))
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=layers_per_block,
        block_out_channels=tuple(block_out_channels),
        down_block_types=tuple("AttnDownBlock2D" if level in attention_levels else "DownBlock2D" for level in levels),
        up_block_types=tuple(
            "AttnUpBlock2D" if level in attention_levels else "UpBlock2D" for level in reversed(levels)
        ),
        norm_num_groups=min(32, min(block_out_channels)),
    )


def build_scheduler(train_timesteps: int, beta_start: float, beta_end: float) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=train_timesteps, beta_start=beta_start, beta_end=beta_end, beta_schedule="linear"
    )


def denoising_step_loss(scheduler: DDPMScheduler) -> StepLoss:
    """The DDPM objective: predict the noise added at a uniformly drawn timestep."""
    timestep_count = scheduler.config.num_train_timesteps

    def step_loss(unet: UNet2DModel, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(clean.shape, generator=generator).to(clean.device)
        timesteps = torch.randint(0, timestep_count, (len(clean),), generator=generator).to(clean.device)
        return F.mse_loss(unet(scheduler.add_noise(clean, noise, timesteps), timesteps).sample, noise)

    return step_loss


def train_ddpm(images: np.ndarray, model_config: dict, training: dict, seed: int, output_dir: str | Path | None,
               state_path: str | Path | None, device: torch.device, snapshot_steps: list[int] = (),
               snapshot_dir: str | Path | None = None, save_model: ModelSaver | None = None) -> list[float]:
    """Train a DDPM on ``images`` [R, C, S, S] in [-1, 1] and save it to ``output_dir``.

    ``save_model`` saves the final model and snapshots (default ``save_ddpm``); the LDM family
    trains its latent U-Net here, on latents instead of images, and saves its own folder.

    Resumes from ``state_path`` when it holds a state saved with the same settings and data
    (``None``: no resumable state). ``training.precision`` bf16 / fp16 autocasts the forward pass on
    CUDA (ignored on CPU); ``training.ema_decay`` saves an exponential moving average of the weights
    as the model. Returns the per-step training loss curve.

    Snapshots: after each step k in ``snapshot_steps`` the model is saved to
    ``snapshot_dir/step_{k}``. With ``output_dir=None`` training stops after the last snapshot;
    the learning-rate schedule still spans ``training["steps"]``, so the snapshots lie on the
    trajectory of the full run with the same seed."""
    settings = training_settings(images, model_config, training, seed)
    save_model = save_model or save_ddpm
    torch.manual_seed(seed)
    unet = build_unet(images.shape[-1], images.shape[1], model_config["block_out_channels"],
                      model_config["layers_per_block"], model_config.get("attention_levels", [])).to(device)
    scheduler = build_scheduler(model_config["train_timesteps"], model_config["beta_start"], model_config["beta_end"])

    def save_snapshot(step: int, loss_curve: list[float]) -> None:
        save_model(Path(snapshot_dir) / f"step_{step}", unet, scheduler, loss_curve, {**settings, "snapshot_step": step})

    stop_at = None if output_dir is not None or not snapshot_steps else max(snapshot_steps)
    loss_curve = train_resumably(unet, denoising_step_loss(scheduler), images, training, seed, settings, state_path,
                                 device, snapshot_steps, save_snapshot, stop_at)
    if output_dir is not None:
        save_model(Path(output_dir), unet, scheduler, loss_curve, settings)
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    return loss_curve


def save_diffusion_parts(folder: Path, unet: UNet2DModel, scheduler: DDPMScheduler) -> None:
    """``unet/`` and ``scheduler/`` (diffusers ``save_pretrained``, safetensors) inside ``folder``."""
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")


def save_ddpm(output_dir: str | Path, unet: UNet2DModel, scheduler: DDPMScheduler, loss_curve: list[float],
              settings: dict) -> None:
    with atomic_directory(output_dir) as folder:
        save_diffusion_parts(folder, unet, scheduler)
        write_training_record(folder, "ddpm", loss_curve, settings)


# Weight files torch writes with pickle; loading one could run code, so they are never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def load_diffusion_parts(model_dir: Path, device: torch.device, what: str) -> tuple[UNet2DModel, DDPMScheduler]:
    """The ``unet/`` and ``scheduler/`` of a model folder; ``what`` ("a DDPM") names it in the error."""
    unet_dir, scheduler_dir = model_dir / "unet", model_dir / "scheduler"
    if not (unet_dir / "config.json").exists() or not (scheduler_dir / "scheduler_config.json").exists():
        raise CheckpointError(
            f"{model_dir}: not {what} folder (needs unet/config.json and scheduler/scheduler_config.json); "
            "retrain the model or point the config at a diffusers model folder")
    pickled = sorted(path.name for path in unet_dir.iterdir() if path.suffix in PICKLE_SUFFIXES)
    if pickled and not any(unet_dir.glob("*.safetensors")):
        raise CheckpointError(f"{unet_dir}: the weights are a pickle ({pickled[0]}), which can run code when loaded; "
                              "only safetensors are loaded: re-save the model with save_pretrained(safe_serialization=True)")
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True).to(device)
        scheduler = DDPMScheduler.from_pretrained(scheduler_dir)
    except (OSError, ValueError, RuntimeError) as error:
        raise unloadable(model_dir, error) from None
    return unet.eval(), scheduler


def load_ddpm(model_dir: str | Path, device: torch.device) -> tuple[UNet2DModel, DDPMScheduler]:
    """Load a DDPM folder (ours, or a diffusers pipeline folder with ``unet/`` and ``scheduler/``)."""
    model_dir = Path(model_dir)
    require_family(model_dir, "ddpm")
    return load_diffusion_parts(model_dir, device, "a DDPM")


def adopt_pretrained_ddpm(source_dir: str | Path, output_dir: str | Path, image_size: int, channels: int) -> None:
    """Take a DDPM trained elsewhere (a diffusers folder with ``unet/`` and ``scheduler/``, safetensors
    weights only) as the pipeline's model folder, after checking that it fits the data."""
    unet, scheduler = load_ddpm(source_dir, torch.device("cpu"))
    size, in_channels = unet.config.sample_size, unet.config.in_channels
    if size not in (image_size, [image_size, image_size], (image_size, image_size)) or in_channels != channels:
        raise CheckpointError(f"{source_dir}: the model takes {in_channels} x {size} px images but the data are "
                              f"{channels} x {image_size} px; set data.image_size / data.channels to match it")
    save_ddpm(output_dir, unet, scheduler, [], {"pretrained": str(Path(source_dir).resolve())})
