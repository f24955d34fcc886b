"""Evaluation by the field's rules: members are the positive class, higher score = member.

TPR at FPR f is the TPR of the largest ROC point with FPR <= f. A single operating point
(attack success rate, ASR) uses a threshold fitted on the shadow records, never on the target's
labels. Intervals: percentile bootstrap, members and non-members resampled separately.

The empirical lower bound on epsilon (``empirical_epsilon``) reads the same shadow-fitted threshold's
decisions on the target records: an (epsilon, delta)-DP training algorithm caps every membership test
by FPR + e^epsilon FNR >= 1 - delta and FNR + e^epsilon FPR >= 1 - delta, so upper confidence bounds on
the test's two error rates give a lower bound on epsilon.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betaincinv

from pfami.config import DEFAULT_DELTA

FPR_LEVELS = (0.01, 0.001)
EPSILON_CONFIDENCE = 0.95


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
    # Imported here: the steps that only read results (figures, summary, audit document) need the rest
    # of this module, and importing scikit-learn costs each of them about 0.6 CPU-s.
    from sklearn.metrics import auc, roc_curve

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


def resampled_figures(members: np.ndarray, non_members: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """``roc_summary``'s figures and the ASR at ``threshold`` of many resamples at once: rows of ``members``
    [R, M] and ``non_members`` [R, N] are the resamples' scores.

    The same numbers as ``roc_summary`` row by row (a test). The AUC is the Mann-Whitney statistic (ties
    count one half), the area under the ROC curve. The TPR at FPR f counts the members above the
    non-member score that the largest FPR <= f leaves out. That is the ROC's own point unless a member
    ties a non-member: then roc_curve may drop the point as collinear with its neighbours (and the
    field's recipe reads the TPR off the points it keeps), so such rows go through ``roc_summary``."""
    from scipy.stats import rankdata

    member_count, non_member_count = members.shape[1], non_members.shape[1]
    combined = np.concatenate([members, non_members], axis=1)
    ranks = rankdata(combined, axis=1)[:, :member_count]
    figures = {"auc": (ranks.sum(axis=1) - member_count * (member_count + 1) / 2) / (member_count * non_member_count)}
    descending = -np.sort(-non_members, axis=1)
    false_positives = np.arange(non_member_count + 1)
    for level in FPR_LEVELS:
        allowed = int(false_positives[false_positives / non_member_count <= level].max())
        figures[f"tpr_at_{level:g}_fpr"] = (np.ones(len(members)) if allowed == non_member_count else
                                           (members > descending[:, [allowed]]).sum(axis=1) / member_count)
    order = np.argsort(combined, axis=1, kind="stable")
    values, is_member = np.take_along_axis(combined, order, axis=1), order < member_count
    cross_tied = ((np.diff(values, axis=1) == 0) & (is_member[:, 1:] != is_member[:, :-1])).any(axis=1)
    labels = np.arange(member_count + non_member_count) < member_count
    for row in np.flatnonzero(cross_tied):
        for name, value in roc_summary(combined[row], labels).items():
            if name != "auc":
                figures[name][row] = value
    figures["asr"] = ((members >= threshold).sum(axis=1) + (non_members < threshold).sum(axis=1)) / (
        member_count + non_member_count)
    return figures


def clopper_pearson_upper(errors: int, trials: int, confidence: float = EPSILON_CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a rate with ``errors`` out of ``trials``: the p at which
    P(Binomial(trials, p) <= errors) = 1 - confidence, i.e. the ``confidence`` quantile of
    Beta(errors + 1, trials - errors); 1 when every trial is an error."""
    if trials < 1 or not 0 <= errors <= trials:
        raise ValueError(f"need 0 <= errors <= trials and trials >= 1, got {errors} errors in {trials} trials")
    if errors == trials:
        return 1.0
    return float(betaincinv(errors + 1, trials - errors, confidence))


def empirical_epsilon(false_positives: int, non_members: int, false_negatives: int, members: int, delta: float,
                      confidence: float = EPSILON_CONFIDENCE) -> float:
    """A lower bound on the epsilon of any (epsilon, delta)-DP algorithm that trained the attacked model,
    from a membership test's errors at a threshold not chosen on the counted records:
    max(0, ln((1 - delta - FNR_ub) / FPR_ub), ln((1 - delta - FPR_ub) / FNR_ub)), with one-sided
    Clopper-Pearson upper bounds at ``confidence`` on both rates (a term whose numerator is not positive
    proves nothing and counts as 0). Treats each record as one trial."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    fpr_upper = clopper_pearson_upper(false_positives, non_members, confidence)
    fnr_upper = clopper_pearson_upper(false_negatives, members, confidence)
    bound = 0.0
    for numerator, denominator in ((1 - delta - fnr_upper, fpr_upper), (1 - delta - fpr_upper, fnr_upper)):
        if numerator > 0:
            bound = max(bound, math.log(numerator / denominator))
    return bound


def largest_provable_epsilon(non_members: int, members: int, delta: float,
                             confidence: float = EPSILON_CONFIDENCE) -> float:
    """The empirical epsilon of a perfect test (no errors): the most these record counts can prove."""
    return empirical_epsilon(0, non_members, 0, members, delta, confidence)


def bootstrap_intervals(scores: np.ndarray, is_member: np.ndarray, threshold: float, resamples: int, seed: int,
                        confidence: float = 0.95) -> dict[str, list[float]]:
    """Percentile intervals of every ``roc_summary`` figure and of the ASR at ``threshold``."""
    scores, is_member = _check(scores, is_member)
    rng = np.random.default_rng(seed)
    members, non_members = scores[is_member], scores[~is_member]
    # Drawn one resample at a time, members first, as before: the same random stream, so the same resamples.
    draws = [(rng.choice(members, len(members)), rng.choice(non_members, len(non_members))) for _ in range(resamples)]
    figures = resampled_figures(np.array([draw[0] for draw in draws]), np.array([draw[1] for draw in draws]), threshold)
    tail = (1 - confidence) / 2 * 100
    return {name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
            for name, values in figures.items()}


def target_metrics(target_scores: np.ndarray, target_is_member: np.ndarray, threshold: float, resamples: int,
                   seed: int, delta: float = DEFAULT_DELTA) -> dict:
    """Every figure of the target records' scores: ROC figures, and ASR / TPR / FPR, the error counts and
    the empirical epsilon (at ``delta``) at a ``threshold`` fixed without the target's labels, with
    bootstrap intervals."""
    point = operating_point(target_scores, target_is_member, threshold)
    target_scores, target_is_member = _check(target_scores, target_is_member)
    predicted = target_scores >= threshold
    members, non_members = int(target_is_member.sum()), int((~target_is_member).sum())
    false_positives = int(predicted[~target_is_member].sum())
    false_negatives = int((~predicted[target_is_member]).sum())
    return {**roc_summary(target_scores, target_is_member), "asr": point["asr"], "threshold": threshold,
            "threshold_tpr": point["tpr"], "threshold_fpr": point["fpr"],
            "ci95": bootstrap_intervals(target_scores, target_is_member, threshold, resamples, seed),
            "members": members, "non_members": non_members,
            "false_positives": false_positives, "false_negatives": false_negatives,
            "eps_lb": empirical_epsilon(false_positives, non_members, false_negatives, members, delta)}


def evaluate_attack(shadow_scores: np.ndarray, shadow_is_member: np.ndarray, target_scores: np.ndarray,
                    target_is_member: np.ndarray, resamples: int, seed: int, delta: float = DEFAULT_DELTA) -> dict:
    """Every figure for one attack: ROC figures on the target; ASR, the error counts and the empirical
    epsilon (at ``delta``) of the target records' decisions at the shadow-fitted threshold."""
    threshold = fit_threshold(shadow_scores, shadow_is_member)
    result = target_metrics(target_scores, target_is_member, threshold, resamples, seed, delta)
    shadow_asr = operating_point(shadow_scores, shadow_is_member, threshold)["asr"]
    # The keys in the order earlier releases wrote them (metrics.json diffs stay readable), then the new ones.
    order = ("auc", *(f"tpr_at_{level:g}_fpr" for level in FPR_LEVELS), "asr", "threshold", "threshold_tpr",
             "threshold_fpr", "shadow_asr", "ci95", "members", "non_members", "false_positives", "false_negatives",
             "eps_lb")
    return {key: shadow_asr if key == "shadow_asr" else result[key] for key in order}


def roc_points(scores: np.ndarray, is_member: np.ndarray) -> np.ndarray:
    """ROC points [K, 3]: fpr, tpr, threshold."""
    from sklearn.metrics import roc_curve

    scores, is_member = _check(scores, is_member)
    fpr, tpr, thresholds = roc_curve(is_member, scores)
    return np.column_stack([fpr, tpr, thresholds])
