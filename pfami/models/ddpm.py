"""DDPM: a diffusers ``UNet2DModel`` with a ``DDPMScheduler``, trained resumably.

A trained model is a folder ``unet/`` + ``scheduler/`` (diffusers ``save_pretrained``,
safetensors) plus ``loss_curve.csv`` and ``training.json``. The resumable training state
(step, model, optimiser, random state, loss curve so far) lives in a separate file that is
saved every ``checkpoint_every`` steps and removed when training ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from tqdm import tqdm

from pfami.io import atomic_directory, atomic_path

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A model folder that is missing, truncated or of another model family."""


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


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _learning_rate_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + float(np.cos(np.pi * min(1.0, progress))))


def train_ddpm(images: np.ndarray, model_config: dict, training: dict, seed: int, output_dir: str | Path | None,
               state_path: str | Path | None, device: torch.device, snapshot_steps: list[int] = (),
               snapshot_dir: str | Path | None = None) -> list[float]:
    """Train a DDPM on ``images`` [R, C, S, S] in [-1, 1] and save it to ``output_dir``.

    Resumes from ``state_path`` when it holds a state saved with the same settings and data
    (``None``: no resumable state). Returns the per-step training loss curve.

    Snapshots: after each step k in ``snapshot_steps`` the model is saved to
    ``snapshot_dir/step_{k}``. With ``output_dir=None`` training stops after the last snapshot;
    the learning-rate schedule still spans ``training["steps"]``, so the snapshots lie on the
    trajectory of the full run with the same seed."""
    settings = {"model": model_config, "training": training, "seed": seed, "records": int(len(images)),
                "data": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()}
    digest = settings_digest(settings)
    torch.manual_seed(seed)
    unet = build_unet(images.shape[-1], images.shape[1], model_config["block_out_channels"],
                      model_config["layers_per_block"], model_config.get("attention_levels", [])).to(device)
    scheduler = build_scheduler(model_config["train_timesteps"], model_config["beta_start"], model_config["beta_end"])
    optimiser = torch.optim.AdamW(unet.parameters(), lr=training["learning_rate"],
                                  betas=tuple(training.get("adam_betas", (0.9, 0.999))),
                                  weight_decay=training.get("weight_decay", 0.0))
    total_steps, warmup = training["steps"], training.get("warmup_steps", 0)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: _learning_rate_factor(step, warmup, total_steps))
    generator = torch.Generator().manual_seed(seed)
    start_step, loss_curve = 0, []

    state_path = Path(state_path) if state_path is not None else None
    if state_path is not None and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("settings_digest") == digest:
            unet.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            lr_schedule.load_state_dict(state["lr_schedule"])
            generator.set_state(state["generator"])
            start_step, loss_curve = int(state["step"]), list(state["loss_curve"])
            log.info("resuming training from step %d of %d (%s)", start_step, total_steps, state_path)
        else:
            log.info("ignoring %s: it was saved with other settings or data", state_path)

    data = torch.from_numpy(images)
    batch_size, checkpoint_every = training["batch_size"], training["checkpoint_every"]
    timestep_count = scheduler.config.num_train_timesteps
    snapshot_steps = sorted(set(snapshot_steps))
    last_step = total_steps if output_dir is not None or not snapshot_steps else max(snapshot_steps)
    unet.train()
    progress = tqdm(range(start_step, last_step), initial=start_step, total=last_step, desc="train",
                    mininterval=5.0)
    for step in progress:
        batch_index = torch.randint(0, len(data), (batch_size,), generator=generator)
        clean = data[batch_index].to(device)
        noise = torch.randn(clean.shape, generator=generator).to(device)
        timesteps = torch.randint(0, timestep_count, (batch_size,), generator=generator).to(device)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        loss = F.mse_loss(unet(noisy, timesteps).sample, noise)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower training.learning_rate")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if training.get("gradient_clip"):
            torch.nn.utils.clip_grad_norm_(unet.parameters(), training["gradient_clip"])
        optimiser.step()
        lr_schedule.step()
        loss_curve.append(loss.item())
        if step + 1 in snapshot_steps:
            save_ddpm(Path(snapshot_dir) / f"step_{step + 1}", unet, scheduler, loss_curve,
                      {**settings, "snapshot_step": step + 1})
        if state_path is not None and (step + 1) % checkpoint_every == 0 and step + 1 < last_step:
            _save_training_state(state_path, unet, optimiser, lr_schedule, generator, step + 1, loss_curve, digest)
            progress.set_postfix(loss=f"{np.mean(loss_curve[-checkpoint_every:]):.4f}")

    if output_dir is not None:
        save_ddpm(output_dir, unet, scheduler, loss_curve, settings)
    if state_path is not None:
        state_path.unlink(missing_ok=True)
    return loss_curve


def _save_training_state(path: Path, unet, optimiser, lr_schedule, generator, step, loss_curve, digest) -> None:
    state = {"settings_digest": digest, "step": step, "model": unet.state_dict(), "optimiser": optimiser.state_dict(),
             "lr_schedule": lr_schedule.state_dict(), "generator": generator.get_state(), "loss_curve": loss_curve}
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def save_ddpm(output_dir: str | Path, unet: UNet2DModel, scheduler: DDPMScheduler, loss_curve: list[float],
              settings: dict) -> None:
    with atomic_directory(output_dir) as folder:
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        scheduler.save_pretrained(folder / "scheduler")
        lines = ["step,loss"] + [f"{step + 1},{loss:.6f}" for step, loss in enumerate(loss_curve)]
        (folder / "loss_curve.csv").write_text("\n".join(lines) + "\n")
        (folder / "training.json").write_text(json.dumps({"family": "ddpm", **settings}, indent=1))


def load_ddpm(model_dir: str | Path, device: torch.device) -> tuple[UNet2DModel, DDPMScheduler]:
    """Load a DDPM folder (ours, or a diffusers pipeline folder with ``unet/`` and ``scheduler/``)."""
    model_dir = Path(model_dir)
    unet_dir, scheduler_dir = model_dir / "unet", model_dir / "scheduler"
    if not (unet_dir / "config.json").exists() or not (scheduler_dir / "scheduler_config.json").exists():
        raise CheckpointError(
            f"{model_dir}: not a DDPM folder (needs unet/config.json and scheduler/scheduler_config.json); "
            "retrain the model or point the config at a diffusers model folder")
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True).to(device)
        scheduler = DDPMScheduler.from_pretrained(scheduler_dir)
    except (OSError, ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{model_dir}: cannot load the model ({first_line}); retrain it or restore the folder") from None
    return unet.eval(), scheduler


def read_loss_curve(model_dir: str | Path) -> np.ndarray:
    rows = np.loadtxt(Path(model_dir) / "loss_curve.csv", delimiter=",", skiprows=1, ndmin=2)
    return rows[:, 1]
