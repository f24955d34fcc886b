"""Loss-based baselines read from the PFAMI loss tensors (strength 0 = the record itself)."""

from __future__ import annotations

import numpy as np


def loss_attack_scores(target_losses: np.ndarray) -> np.ndarray:
    """Loss attack (Matsumoto et al. 2023): minus the mean denoising loss over timesteps."""
    return -target_losses[:, :, 0].mean(axis=1).astype(np.float64)


def calibrated_loss_scores(target_losses: np.ndarray, reference_losses: np.ndarray) -> np.ndarray:
    """Loss calibrated by the reference model: minus (target loss - reference loss)."""
    return -(target_losses[:, :, 0].mean(axis=1) - reference_losses[:, :, 0].mean(axis=1)).astype(np.float64)
