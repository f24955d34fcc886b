"""Resumable training shared by every model family.

A family supplies its network and a ``step_loss(model, clean_batch, generator)``; this module
runs AdamW with warm-up + cosine decay, draws batches with replacement from a seeded generator,
saves the resumable state (step, model, optimiser, schedule, generator, loss curve so far, and the
EMA weights and fp16 gradient scaler when used) every ``checkpoint_every`` steps, and resumes from
it when it was saved with the same settings and data. ``training.ema_decay`` keeps an exponential
moving average of the weights, which becomes the model at the end; ``training.precision`` bf16 /
fp16 autocasts the forward pass on CUDA (ignored on CPU).
Every random draw of a step comes from the one generator, so a resumed run is identical to an
uninterrupted one.

``training.privacy`` makes it DP-SGD (``pfami.models.privacy``): Poisson-sampled batches, per-record
clipping and Gaussian noise from a second generator that the resumable state keeps too; the noise
multiplier and the rest of the accounting are part of the settings (``training.json``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pfami.io import atomic_path

log = logging.getLogger(__name__)

StepLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def training_settings(images: np.ndarray, model_config: dict, training: dict, seed: int) -> dict:
    """What a trained model depends on; its digest keys the resumable state. A DP training's accounting
    (``privacy_accounting``: the noise multiplier, sampling rate, steps, accountant) is part of it."""
    settings = {"model": model_config, "training": training, "seed": seed, "records": int(len(images)),
                "data": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()}
    if training.get("privacy"):
        from pfami.models.privacy import privacy_accounting
        settings["privacy"] = privacy_accounting(training["privacy"], training["batch_size"], len(images),
                                                 training["steps"])
    return settings


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + float(np.cos(np.pi * min(1.0, progress))))


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def update_ema(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float, step: int) -> None:
    """ema <- d ema + (1 - d) weights, with d = min(decay, (1 + step) / (10 + step)): the ramp keeps the
    average from being dominated by the random initial weights early in training."""
    step_decay = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                ema[name].lerp_(value, 1.0 - step_decay)
            else:
                ema[name].copy_(value)


def train_resumably(model: torch.nn.Module, step_loss: StepLoss, images: np.ndarray, training: dict, seed: int,
                    settings: dict, state_path: str | Path | None, device: torch.device,
                    snapshot_steps: Sequence[int] = (), save_snapshot: Callable[[int, list[float]], None] | None = None,
                    stop_at: int | None = None) -> list[float]:
    """Train ``model`` in place on ``images`` and return the per-step loss curve.

    The caller builds ``model`` after seeding torch, so its initial weights depend on ``seed``.
    ``state_path=None`` keeps no resumable state. After each step k in ``snapshot_steps``,
    ``save_snapshot(k, loss_curve)`` is called; ``stop_at`` ends training early while the
    learning-rate schedule still spans ``training["steps"]``."""
    digest = settings_digest(settings)
    optimiser = torch.optim.AdamW(model.parameters(), lr=training["learning_rate"],
                                  betas=tuple(training.get("adam_betas", (0.9, 0.999))),
                                  weight_decay=training.get("weight_decay", 0.0))
    total_steps, warmup = training["steps"], training.get("warmup_steps", 0)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: learning_rate_factor(step, warmup, total_steps))
    generator = torch.Generator().manual_seed(seed)
    start_step, loss_curve = 0, []
    ema_decay = training.get("ema_decay")
    ema = {name: value.detach().clone() for name, value in model.state_dict().items()} if ema_decay else None
    autocast_dtype = AUTOCAST_DTYPES[training.get("precision", "fp32")] if device.type == "cuda" else None
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype is torch.float16)
    accounting = settings.get("privacy")
    network, noise_generator = model, None
    if accounting is not None:
        from pfami.models.privacy import private_training
        # The clipped gradients' noise has its own generator (on the model's device, where Opacus draws it).
        noise_generator = torch.Generator(device=device).manual_seed(seed ^ NOISE_SEED_KEY)
        network, dp_optimiser = private_training(model, optimiser, accounting, noise_generator)

    state_path = Path(state_path) if state_path is not None else None
    if state_path is not None and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("settings_digest") == digest:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            lr_schedule.load_state_dict(state["lr_schedule"])
            generator.set_state(state["generator"])
            if noise_generator is not None:
                noise_generator.set_state(state["noise_generator"])
            start_step, loss_curve = int(state["step"]), list(state["loss_curve"])
            if ema is not None:
                ema = {name: value.to(device) for name, value in state["ema"].items()}
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            log.info("resuming training from step %d of %d (%s)", start_step, total_steps, state_path)
        else:
            log.info("ignoring %s: it was saved with other settings or data", state_path)

    data = torch.from_numpy(images)
    batch_size, checkpoint_every = training["batch_size"], training["checkpoint_every"]
    last_step = stop_at or total_steps
    model.train()
    progress = tqdm(range(start_step, last_step), initial=start_step, total=last_step, desc="train",
                    mininterval=5.0)
    for step in progress:
        if accounting is not None:
            loss = private_step(network, dp_optimiser, step_loss, data, accounting, generator, device, step)
            lr_schedule.step()
            if ema is not None:
                update_ema(ema, model, ema_decay, step)
            loss_curve.append(loss)
            if step + 1 in snapshot_steps:
                save_snapshot(step + 1, loss_curve)
            if state_path is not None and (step + 1) % checkpoint_every == 0 and step + 1 < last_step:
                save_training_state(state_path, model, optimiser, lr_schedule, generator, step + 1, loss_curve,
                                    digest, ema, scaler, noise_generator)
            continue
        batch_index = torch.randint(0, len(data), (batch_size,), generator=generator)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = step_loss(model, data[batch_index].to(device), generator).float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower training.learning_rate")
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if training.get("gradient_clip"):
            scaler.unscale_(optimiser)  # clip the true gradient, not the scaled one
            torch.nn.utils.clip_grad_norm_(model.parameters(), training["gradient_clip"])
        scaler.step(optimiser)
        scaler.update()
        lr_schedule.step()
        if ema is not None:
            update_ema(ema, model, ema_decay, step)
        loss_curve.append(loss.item())
        if step + 1 in snapshot_steps:
            save_snapshot(step + 1, loss_curve)
        if state_path is not None and (step + 1) % checkpoint_every == 0 and step + 1 < last_step:
            save_training_state(state_path, model, optimiser, lr_schedule, generator, step + 1, loss_curve, digest,
                                ema, scaler)
            progress.set_postfix(loss=f"{np.mean(loss_curve[-checkpoint_every:]):.4f}")
    if accounting is not None:
        network._close()  # remove Opacus' hooks and per-sample gradients: the model is a plain module again
    if ema is not None:
        model.load_state_dict(ema)
    model.eval()
    return loss_curve


# Mixed into the seed of a DP training's noise generator, so that its draws differ from the batches'.
NOISE_SEED_KEY = 0x6E6F697365


def private_step(network, dp_optimiser, step_loss: StepLoss, data: torch.Tensor, accounting: dict,
                 generator: torch.Generator, device: torch.device, step: int) -> float:
    """One DP-SGD step on a Poisson sample of ``data``; returns the sample's mean loss (NaN when empty)."""
    from pfami.models.privacy import empty_batch_gradients, poisson_batch

    batch_index = poisson_batch(len(data), accounting["sampling_rate"], generator)
    dp_optimiser.zero_grad(set_to_none=True)
    if len(batch_index) == 0:
        empty_batch_gradients(network)
        loss = float("nan")
    else:
        loss_tensor = step_loss(network, data[batch_index].to(device), generator).float()
        if not torch.isfinite(loss_tensor):
            raise FloatingPointError(f"training loss became {loss_tensor.item()} at step {step}; "
                                     "lower training.learning_rate")
        loss_tensor.backward()
        loss = loss_tensor.item()
    dp_optimiser.step()
    return loss


def save_training_state(path: Path, model, optimiser, lr_schedule, generator, step, loss_curve, digest, ema=None,
                        scaler=None, noise_generator=None) -> None:
    state = {"settings_digest": digest, "step": step, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
             "lr_schedule": lr_schedule.state_dict(), "generator": generator.get_state(), "loss_curve": loss_curve,
             "ema": ema, "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
             "noise_generator": noise_generator.get_state() if noise_generator is not None else None}
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
