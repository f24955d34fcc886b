"""Baseline membership-inference attacks on diffusion models.

* SecMI_stat (Duan et al., ICML 2023): the t-error of one deterministic DDIM round trip, and the
  per-record error images that SecMI_NNs feeds to a classifier.
* PIA and PIAN (Kong et al., ICLR 2024): proximal initialisation with the model's own noise
  prediction at t = 0.

Conventions shared with the rest of the package:

* images are float32 tensors [R, C, H, W] in [-1, 1];
* ``eps_model(noisy_images, timesteps) -> predicted noise`` with ``timesteps`` a LongTensor [B];
* ``alphas_cumprod`` is the scheduler's cumulative product of alphas, shape [T];
* every attack returns one float per record, HIGHER = MORE LIKELY A MEMBER;
* every attack has a ``*_queries`` function giving the network evaluations it spends per
  record on each model, as ``{"target": n, "reference": m}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# Torch-free, with the baselines' settings (re-exported here).
from pfami.config import pia_queries, secmi_queries, secmi_timesteps  # noqa: F401

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "EpsModel",
    "SecMIResult",
    "ddim_step",
    "pia_attack",
    "pia_queries",
    "pian_attack",
    "secmi_attack",
    "secmi_queries",
    "secmi_timesteps",
]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _schedule(alphas_cumprod: torch.Tensor | np.ndarray) -> np.ndarray:
    abar = np.asarray(torch.as_tensor(alphas_cumprod).detach().cpu().double().numpy(), dtype=np.float64)
    if abar.ndim != 1 or abar.size == 0 or not np.all((abar > 0) & (abar <= 1)):
        raise ValueError("alphas_cumprod must be a non-empty 1-D array of values in (0, 1]")
    return abar


def _check_timestep(t: int, abar: np.ndarray, name: str) -> int:
    if int(t) != t or not 0 <= t < abar.size:
        raise ValueError(f"{name}={t} is not a timestep of a {abar.size}-step schedule")
    return int(t)


def _check_images(images: torch.Tensor) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [records, C, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor, got {images.dtype}")
    return images


def _check_batch_size(batch_size: int) -> int:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return int(batch_size)


def _predict(eps_model: EpsModel, x: torch.Tensor, t: int) -> torch.Tensor:
    timesteps = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    eps = eps_model(x, timesteps)
    if eps.shape != x.shape:
        raise ValueError(f"eps_model returned shape {tuple(eps.shape)} for input {tuple(x.shape)}")
    return eps


def ddim_step(eps_model: EpsModel, x: torch.Tensor, t_from: int, t_to: int, alphas_cumprod) -> torch.Tensor:
    """One deterministic DDIM step (eta = 0) from timestep ``t_from`` to ``t_to``; one network call.

    ``eps = eps_model(x, t_from)``, ``x0 = (x - sqrt(1 - abar_from) eps) / sqrt(abar_from)``,
    ``x' = sqrt(abar_to) x0 + sqrt(1 - abar_to) eps``. With ``t_to > t_from`` this is a step of
    DDIM inversion (towards noise), with ``t_to < t_from`` a denoising step.
    """
    abar = _schedule(alphas_cumprod)
    t_from = _check_timestep(t_from, abar, "t_from")
    t_to = _check_timestep(t_to, abar, "t_to")
    eps = _predict(eps_model, x, t_from)
    # Coefficients in float64, applied in the images' dtype.
    a_from, s_from = math.sqrt(abar[t_from]), math.sqrt(1.0 - abar[t_from])
    a_to, s_to = math.sqrt(abar[t_to]), math.sqrt(1.0 - abar[t_to])
    x0_hat = (x - s_from * eps) / a_from
    return a_to * x0_hat + s_to * eps


# --------------------------------------------------------------------------------------------
# SecMI
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecMIResult:
    """Output of :func:`secmi_attack`, all on the CPU, records in input order.

    ``scores``: SecMI_stat score ``-errors`` (higher = member), float64 [R].
    ``errors``: t-error ``sum over pixels of (x^_t - x~_t)^2``, float64 [R].
    ``error_images``: ``|x^_t - x~_t|``, float32 [R, C, H, W], the SecMI_NNs classifier input.
    """

    scores: np.ndarray
    errors: np.ndarray
    error_images: np.ndarray


def secmi_attack(
    eps_model: EpsModel,
    images: torch.Tensor,
    alphas_cumprod,
    *,
    t_sec: int = 100,
    k: int = 10,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> SecMIResult:
    """SecMI t-error (Duan et al., 2023), following the authors' code.

    For each record x_0: deterministic DDIM inversion 0 -> k -> ... -> t gives ``x~_t`` with
    ``t = t_sec - k``; one more inversion step t -> t_sec followed by one denoising step
    t_sec -> t gives ``x^_t``. The t-error is ``||x^_t - x~_t||_2^2`` (summed over pixels);
    SecMI_stat scores ``-t-error``. The first call sees the clean image at timestep 0, as in the
    authors' code. Network calls per record: :func:`secmi_queries`.
    """
    images = _check_images(images)
    batch_size = _check_batch_size(batch_size)
    abar = _schedule(alphas_cumprod)
    grid, t, t_top = secmi_timesteps(t_sec, k)
    _check_timestep(t_top, abar, "t_sec")

    errors, error_images = [], []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device=device)
            for t_from, t_to in zip(grid[:-1], grid[1:]):
                x = ddim_step(eps_model, x, t_from, t_to, abar)
            x_tilde = x
            x_up = ddim_step(eps_model, x_tilde, t, t_top, abar)
            x_hat = ddim_step(eps_model, x_up, t_top, t, abar)
            diff = (x_hat - x_tilde).double()
            errors.append(diff.pow(2).flatten(1).sum(dim=1).cpu().numpy())
            error_images.append(diff.abs().float().cpu().numpy())
    errors_arr = np.concatenate(errors) if errors else np.zeros(0)
    images_arr = np.concatenate(error_images) if error_images else np.zeros((0, *images.shape[1:]), np.float32)
    return SecMIResult(scores=-errors_arr, errors=errors_arr, error_images=images_arr)


# --------------------------------------------------------------------------------------------
# PIA / PIAN
# --------------------------------------------------------------------------------------------

# E|z| for z ~ N(0, 1).
_GAUSSIAN_MEAN_ABS = math.sqrt(2.0 / math.pi)


def _gaussianise(eps: torch.Tensor, how: str) -> torch.Tensor:
    dims = tuple(range(1, eps.ndim))
    if how == "mean_abs":
        # PIAN as in Kong et al.: rescale so the mean absolute value matches a standard normal's.
        scale = eps.abs().mean(dim=dims, keepdim=True)
        return eps * (_GAUSSIAN_MEAN_ABS / scale.clamp_min(torch.finfo(eps.dtype).tiny))
    if how == "standardise":
        mean = eps.mean(dim=dims, keepdim=True)
        std = eps.std(dim=dims, keepdim=True, correction=0)
        return (eps - mean) / std.clamp_min(torch.finfo(eps.dtype).tiny)
    raise ValueError(f"unknown PIAN normalisation {how!r}; choose 'mean_abs' or 'standardise'")


def pia_attack(
    eps_model: EpsModel,
    images: torch.Tensor,
    alphas_cumprod,
    *,
    t: int = 200,
    p: float = 4.0,
    normalise: str | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """PIA (Kong et al., 2024): proximal initialisation with the model's own t = 0 noise.

    ``eps0 = eps_model(x_0, 0)`` (rescaled first when ``normalise`` is set: that is PIAN),
    ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps0``, and the score is
    ``-sum over pixels |eps0 - eps_model(x_t, t)|^p`` (the l_p norm to the power p; p = 4 by
    default), float64 [R], higher = member. Network calls per record: :func:`pia_queries`.
    """
    images = _check_images(images)
    batch_size = _check_batch_size(batch_size)
    abar = _schedule(alphas_cumprod)
    t = _check_timestep(t, abar, "t")
    if not p > 0:
        raise ValueError(f"p must be positive, got {p}")
    a_t, s_t = math.sqrt(abar[t]), math.sqrt(1.0 - abar[t])

    scores = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            x0 = images[start : start + batch_size].to(device=device)
            eps0 = _predict(eps_model, x0, 0)
            if normalise is not None:
                eps0 = _gaussianise(eps0, normalise)
            x_t = a_t * x0 + s_t * eps0
            eps_t = _predict(eps_model, x_t, t)
            dist = (eps0 - eps_t).double().abs().pow(p).flatten(1).sum(dim=1)
            scores.append(-dist.cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def pian_attack(
    eps_model: EpsModel,
    images: torch.Tensor,
    alphas_cumprod,
    *,
    t: int = 200,
    p: float = 4.0,
    normalise: str = "mean_abs",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """PIAN: PIA with ``eps(x_0, 0)`` rescaled to look like standard Gaussian noise.

    ``normalise="mean_abs"`` (default, the PIA paper's definition) scales each record's eps0 so
    that its mean absolute value is ``E|z| = sqrt(2 / pi)``; ``"standardise"`` instead shifts and
    scales it to zero mean and unit variance per record. Same calls as PIA.
    """
    return pia_attack(
        eps_model, images, alphas_cumprod, t=t, p=p, normalise=normalise, batch_size=batch_size, device=device
    )
