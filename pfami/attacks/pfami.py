"""PFAMI's two attacks on the calibrated fluctuation H [R, M, N] (higher score = member)."""

from __future__ import annotations

import numpy as np


def pfami_met_scores(fluctuations: np.ndarray, strength_index: int | None = None) -> np.ndarray:
    """PFAMI_Met: the mean of H over all timesteps and strengths, or, with ``strength_index``,
    over the timesteps of that one strength (the authors' final code uses index 5)."""
    if strength_index is None:
        return fluctuations.mean(axis=(1, 2)).astype(np.float64)
    if not 0 <= strength_index < fluctuations.shape[2]:
        raise ValueError(f"attacks.pfami_met.strength_index: {strength_index} is outside 0..{fluctuations.shape[2] - 1}")
    return fluctuations[:, :, strength_index].mean(axis=1).astype(np.float64)


def pfami_nns_scores(shadow_fluctuations: np.ndarray, shadow_is_member: np.ndarray,
                     target_fluctuations: np.ndarray, settings: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PFAMI_NNs: a classifier on H as a 1 x M x N image, trained on the shadow model's records; which
    one is ``settings["classifier"]`` (``pfami.attacks.learned``: an RBF SVM by default, or the
    authors' ResNet).

    Returns (out-of-sample shadow scores, target scores); the target's labels are never seen."""
    from pfami.attacks.learned import learned_scores

    return learned_scores(shadow_fluctuations[:, None], shadow_is_member, target_fluctuations[:, None], settings, seed)
