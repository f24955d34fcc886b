"""Evaluation by the field's rules: members are the positive class, higher score = member.

TPR at FPR f is the TPR of the largest ROC point with FPR <= f. A single operating point
(attack success rate, ASR) uses a threshold fitted on the shadow records, never on the target's
labels. Intervals: percentile bootstrap, members and non-members resampled separately.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, roc_curve

FPR_LEVELS = (0.01, 0.001)


def _check(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, is_member = np.asarray(scores, dtype=np.float64), np.asarray(is_member, dtype=bool)
    if scores.shape != is_member.shape:
        raise ValueError(f"scores and labels differ in length: {scores.shape} vs {is_member.shape}")
    if is_member.all() or not is_member.any():
        raise ValueError("evaluation needs both members and non-members")
    if not np.isfinite(scores).all():
        raise ValueError(f"score of record index {int(np.argwhere(~np.isfinite(scores))[0][0])} is NaN or infinite")
    return scores, is_member


def tpr_at_fpr(false_positive_rates: np.ndarray, true_positive_rates: np.ndarray, level: float) -> float:
    return float(true_positive_rates[false_positive_rates <= level].max())


def roc_summary(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float]:
    """AUC and TPR at each level of ``FPR_LEVELS``."""
    scores, is_member = _check(scores, is_member)
    fpr, tpr, _ = roc_curve(is_member, scores)
    # The same number as roc_auc_score (trapezoids under this curve), without its input checks, which
    # cost three times the curve: the bootstrap calls this a thousand times per attack.
    summary = {"auc": float(auc(fpr, tpr))}
    for level in FPR_LEVELS:
        summary[f"tpr_at_{level:g}_fpr"] = tpr_at_fpr(fpr, tpr, level)
    return summary


def fit_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold of highest balanced accuracy (predict member when score >= threshold).

    It sits halfway between neighbouring distinct scores, so it does not hinge on one record."""
    scores, is_member = _check(scores, is_member)
    distinct = np.unique(scores)
    candidates = np.concatenate([[distinct[0] - 1.0], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1.0]])
    predicted = scores[None, :] >= candidates[:, None]
    balanced_accuracy = (predicted[:, is_member].mean(axis=1) + (~predicted[:, ~is_member]).mean(axis=1)) / 2
    return float(candidates[int(np.argmax(balanced_accuracy))])


def operating_point(scores: np.ndarray, is_member: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy (ASR), TPR and FPR of a fixed threshold."""
    scores, is_member = _check(scores, is_member)
    predicted = scores >= threshold
    return {"asr": float((predicted == is_member).mean()), "tpr": float(predicted[is_member].mean()),
            "fpr": float(predicted[~is_member].mean())}


def bootstrap_intervals(scores: np.ndarray, is_member: np.ndarray, threshold: float, resamples: int, seed: int,
                        confidence: float = 0.95) -> dict[str, list[float]]:
    """Percentile intervals of every ``roc_summary`` figure and of the ASR at ``threshold``."""
    scores, is_member = _check(scores, is_member)
    rng = np.random.default_rng(seed)
    members, non_members = scores[is_member], scores[~is_member]
    labels = np.concatenate([np.ones(len(members), bool), np.zeros(len(non_members), bool)])
    samples: dict[str, list[float]] = {}
    for _ in range(resamples):
        resampled = np.concatenate([rng.choice(members, len(members)), rng.choice(non_members, len(non_members))])
        figures = {**roc_summary(resampled, labels), "asr": operating_point(resampled, labels, threshold)["asr"]}
        for name, value in figures.items():
            samples.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2 * 100
    return {name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
            for name, values in samples.items()}


def target_metrics(target_scores: np.ndarray, target_is_member: np.ndarray, threshold: float, resamples: int,
                   seed: int) -> dict:
    """Every figure of the target records' scores: ROC figures, and ASR / TPR / FPR at a ``threshold``
    fixed without the target's labels, with bootstrap intervals."""
    point = operating_point(target_scores, target_is_member, threshold)
    return {**roc_summary(target_scores, target_is_member), "asr": point["asr"], "threshold": threshold,
            "threshold_tpr": point["tpr"], "threshold_fpr": point["fpr"],
            "ci95": bootstrap_intervals(target_scores, target_is_member, threshold, resamples, seed),
            "members": int(np.sum(target_is_member)), "non_members": int(np.sum(~np.asarray(target_is_member)))}


def evaluate_attack(shadow_scores: np.ndarray, shadow_is_member: np.ndarray, target_scores: np.ndarray,
                    target_is_member: np.ndarray, resamples: int, seed: int) -> dict:
    """Every figure for one attack: ROC figures and ASR on the target with a shadow-fitted threshold."""
    threshold = fit_threshold(shadow_scores, shadow_is_member)
    result = target_metrics(target_scores, target_is_member, threshold, resamples, seed)
    shadow_asr = operating_point(shadow_scores, shadow_is_member, threshold)["asr"]
    # The keys in the order earlier releases wrote them (metrics.json diffs stay readable).
    order = ("auc", *(f"tpr_at_{level:g}_fpr" for level in FPR_LEVELS), "asr", "threshold", "threshold_tpr",
             "threshold_fpr", "shadow_asr", "ci95", "members", "non_members")
    return {key: shadow_asr if key == "shadow_asr" else result[key] for key in order}


def roc_points(scores: np.ndarray, is_member: np.ndarray) -> np.ndarray:
    """ROC points [K, 3]: fpr, tpr, threshold."""
    scores, is_member = _check(scores, is_member)
    fpr, tpr, thresholds = roc_curve(is_member, scores)
    return np.column_stack([fpr, tpr, thresholds])
