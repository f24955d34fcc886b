"""Probabilistic fluctuations: how the loss rises from a record to its neighbours.

``r[m, n] = (L_m(x~_n) - L_m(x)) / L_m(x)`` and, calibrated with a reference model trained on
disjoint data, ``H = r_target_model - r_reference_model``. Members sit near local maxima of
the model's probability (local minima of the loss), so their H is larger.

Tiny losses. Where ``L_m(x)`` is below ``min_loss`` the ratio would blow up (or divide by zero),
so the denominator is clamped to ``min_loss``; the number of records with at least one clamped
entry is reported, never hidden.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MIN_LOSS = 1e-6


def relative_fluctuation(losses: np.ndarray, min_loss: float = DEFAULT_MIN_LOSS) -> tuple[np.ndarray, np.ndarray]:
    """``r`` [R, M, N] from a loss tensor [R, M, 1 + N], and which records had a clamped denominator."""
    if losses.ndim != 3 or losses.shape[2] < 2:
        raise ValueError(f"loss tensor must be [records, timesteps, 1 + strengths], got shape {losses.shape}")
    if not np.isfinite(losses).all():
        bad = int(np.argwhere(~np.isfinite(losses))[0][0])
        raise ValueError(f"loss tensor has NaN or infinite values (first at record {bad}); re-estimate the losses")
    own_loss = losses[:, :, :1].astype(np.float64)
    clamped = (own_loss < min_loss).any(axis=(1, 2))
    ratio = (losses[:, :, 1:] - own_loss) / np.maximum(own_loss, min_loss)
    return ratio.astype(np.float32), clamped


def calibrated_fluctuation(target_losses: np.ndarray, reference_losses: np.ndarray,
                           min_loss: float = DEFAULT_MIN_LOSS) -> tuple[np.ndarray, np.ndarray]:
    """``H = r_target - r_reference`` [R, M, N] and the records with any clamped denominator."""
    if target_losses.shape != reference_losses.shape:
        raise ValueError(
            f"target and reference loss tensors differ in shape: {target_losses.shape} vs {reference_losses.shape}; "
            "estimate both with the same timesteps, strengths and records")
    target_ratio, target_clamped = relative_fluctuation(target_losses, min_loss)
    reference_ratio, reference_clamped = relative_fluctuation(reference_losses, min_loss)
    return target_ratio - reference_ratio, target_clamped | reference_clamped
