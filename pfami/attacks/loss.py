"""The loss attack (Matsumoto et al., 2023) and its reference-calibrated variant.

Both read the loss tensor L[record, timestep, strength] that the PFAMI estimation step already
produces (strength 0 = the record itself), so they need no network and no torch.
"""

from __future__ import annotations

import numpy as np


def _unperturbed_mean_loss(losses: np.ndarray, name: str) -> np.ndarray:
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 3 or losses.shape[2] < 1:
        raise ValueError(
            f"{name}: expected a loss tensor [records, timesteps, 1 + strengths], got shape {losses.shape}"
        )
    return losses[:, :, 0].mean(axis=1)


def loss_attack(target_losses: np.ndarray) -> np.ndarray:
    """Loss attack: ``-mean_t L_target[:, t, 0]``, one score per record (higher = member)."""
    return -_unperturbed_mean_loss(target_losses, "target_losses")


def calibrated_loss_attack(target_losses: np.ndarray, reference_losses: np.ndarray) -> np.ndarray:
    """Reference-calibrated loss: ``-(mean_t L_target[:, t, 0] - mean_t L_reference[:, t, 0])``."""
    target = _unperturbed_mean_loss(target_losses, "target_losses")
    reference = _unperturbed_mean_loss(reference_losses, "reference_losses")
    if target.shape != reference.shape:
        raise ValueError(f"target and reference losses cover different records: {target.shape} vs {reference.shape}")
    return -(target - reference)


def loss_attack_queries(num_timesteps: int) -> dict[str, int]:
    """One noise prediction per sampled timestep of the unperturbed record, on the target only."""
    return {"target": int(num_timesteps), "reference": 0}


def calibrated_loss_attack_queries(num_timesteps: int) -> dict[str, int]:
    """The same timesteps evaluated on the target and on the reference model."""
    return {"target": int(num_timesteps), "reference": int(num_timesteps)}
