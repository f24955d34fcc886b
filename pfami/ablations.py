"""Ablation studies: how attack success depends on the timesteps, the neighbours, the query
budget, the perturbation mechanism and the target's training length, and how much of PFAMI_NNs'
success is the luck of its classifier's training.

Everything here re-scores loss tensors that already exist (or, for mechanisms and training
snapshots, tensors estimated once by the workflow); nothing here queries a model. Subsets of
records are taken by position, first k members and first k hold-outs, which is exactly the set
the estimation step attacks with ``attacked_per_part = k``, and with common noise a record's
losses do not depend on which other records were estimated with it, so a slice of a larger
tensor equals a smaller estimation.

Ablations REPORT target-model metrics; nothing here chooses a setting by looking at them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from pfami.attacks.loss import calibrated_loss_attack, loss_attack
from pfami.attacks.pfami import pfami_met_scores, pfami_nns_scores
from pfami.fluctuation import calibrated_fluctuation
from pfami.io import atomic_write_text
from pfami.metrics import fit_threshold, operating_point, roc_summary
from pfami.seeding import classifier_seeds, derived_seed
from pfami.config import ablation_settings, check_ablations  # noqa: F401  (torch-free, read by the workflow)

TPR_AT_1_PERCENT = "tpr_at_0.01_fpr"


# --- settings ------------------------------------------------------------------------------


# --- subsets --------------------------------------------------------------------------------


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` indices evenly spread over ``0..total-1``, both ends included; one: the middle."""
    if not 1 <= count <= total:
        raise ValueError(f"cannot pick {count} of {total} values")
    if count == 1:
        return [(total - 1) // 2]
    return sorted({int(round(index)) for index in np.linspace(0, total - 1, count)})


def first_per_part(is_member: np.ndarray, per_part: int | None) -> np.ndarray:
    """Positions of the first ``per_part`` members and first ``per_part`` non-members (all: None),
    in tensor order; the records the estimation attacks with ``attacked_per_part = per_part``."""
    is_member = np.asarray(is_member, dtype=bool)
    members, non_members = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    if per_part is not None and (per_part > len(members) or per_part > len(non_members)):
        raise ValueError(f"asked for {per_part} records per part but the tensor holds {len(members)} members and "
                         f"{len(non_members)} non-members")
    return np.sort(np.concatenate([members[:per_part], non_members[:per_part]]))


def select_records(arrays: dict[str, np.ndarray], record_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of a loss-tensor file (``losses``, ``record_ids``, ``is_member``) for ``record_ids``."""
    position = {int(record_id): index for index, record_id in enumerate(arrays["record_ids"])}
    missing = [int(record_id) for record_id in record_ids if int(record_id) not in position]
    if missing:
        raise ValueError(f"records {missing[:5]} are not in the loss tensor; estimate them first")
    rows = np.array([position[int(record_id)] for record_id in record_ids], dtype=np.int64)
    return {**arrays, "losses": arrays["losses"][rows], "record_ids": arrays["record_ids"][rows],
            "is_member": arrays["is_member"][rows]}


def pfami_met_subset(fluctuation: np.ndarray, timestep_indices: Sequence[int],
                     strength_indices: Sequence[int]) -> np.ndarray:
    """PFAMI_Met on a sub-grid of H [R, M, N]: the mean over the chosen timesteps and strengths."""
    return pfami_met_scores(fluctuation[:, list(timestep_indices)][:, :, list(strength_indices)])


def loss_subset(losses: np.ndarray, timestep_indices: Sequence[int]) -> np.ndarray:
    """The loss attack on a subset of timesteps of a loss tensor [R, M, 1 + N]."""
    return loss_attack(losses[:, list(timestep_indices)])


def calibrated_loss_subset(losses: np.ndarray, reference_losses: np.ndarray,
                           timestep_indices: Sequence[int]) -> np.ndarray:
    """The calibrated loss attack on a subset of timesteps."""
    return calibrated_loss_attack(losses[:, list(timestep_indices)], reference_losses[:, list(timestep_indices)])


def summary(scores: np.ndarray, is_member: np.ndarray) -> dict[str, float]:
    """AUC and TPR at 1% and 0.1% FPR of target scores."""
    return roc_summary(scores, is_member)


# --- the studies ----------------------------------------------------------------------------


def timestep_rows(fluctuation: np.ndarray, losses: np.ndarray, is_member: np.ndarray,
                  timesteps: Sequence[int], timestep_counts: Sequence[int]) -> list[dict]:
    """Per-timestep AUC of PFAMI_Met (H at that timestep, all strengths) and of the loss attack,
    then both on the first k timesteps for each k in ``timestep_counts``."""
    strengths = range(fluctuation.shape[2])
    rows = []
    for index, timestep in enumerate(timesteps):
        for attack, scores in (("pfami_met", pfami_met_subset(fluctuation, [index], strengths)),
                               ("loss", loss_subset(losses, [index]))):
            rows.append({"study": "one_timestep", "timestep": int(timestep), "timestep_count": 1, "attack": attack,
                         **summary(scores, is_member)})
    for count in timestep_counts:
        first = range(count)
        for attack, scores in (("pfami_met", pfami_met_subset(fluctuation, first, strengths)),
                               ("loss", loss_subset(losses, first))):
            rows.append({"study": "first_timesteps", "timestep": int(timesteps[count - 1]), "timestep_count": count,
                         "attack": attack, **summary(scores, is_member)})
    return rows


def strength_rows(fluctuation: np.ndarray, is_member: np.ndarray, strengths: Sequence[float],
                  neighbour_counts: Sequence[int]) -> list[dict]:
    """PFAMI_Met (all timesteps) against the neighbours used.

    ``neighbour_count``: N strengths spread evenly over the configured ones (the range kept);
    ``one_strength``: each strength alone; ``strength_range``: the first k strengths, i.e. from
    the mildest perturbation up to the k-th (the range grows)."""
    timesteps, total = range(fluctuation.shape[1]), len(strengths)

    def row(study: str, indices: Sequence[int]) -> dict:
        chosen = [float(strengths[index]) for index in indices]
        return {"study": study, "neighbour_count": len(indices), "strength_first": chosen[0],
                "strength_last": chosen[-1], "strengths": " ".join(f"{value:g}" for value in chosen),
                "attack": "pfami_met", **summary(pfami_met_subset(fluctuation, timesteps, indices), is_member)}

    rows = [row("neighbour_count", spread_indices(total, count)) for count in neighbour_counts]
    rows += [row("one_strength", [index]) for index in range(total)]
    rows += [row("strength_range", list(range(count))) for count in range(1, total + 1)]
    return rows


def query_budget_rows(fluctuation: np.ndarray, losses: np.ndarray, reference_losses: np.ndarray,
                      is_member: np.ndarray, timestep_counts: Sequence[int], neighbour_counts: Sequence[int],
                      attack_metrics: dict) -> list[dict]:
    """AUC and TPR@1%FPR against network evaluations per record (target + reference model).

    PFAMI_Met on the first k timesteps x N spread strengths costs 2 k (N + 1); the loss attack
    on the first k timesteps k, the calibrated loss 2 k. Every attack in ``attack_metrics``
    (metrics.json's ``attacks``) adds its full-budget point from its ``queries_per_record``, so
    attacks added to the pipeline later appear without change here."""
    total_strengths = fluctuation.shape[2]
    rows = []
    for timestep_count in timestep_counts:
        first = range(timestep_count)
        for neighbour_count in neighbour_counts:
            scores = pfami_met_subset(fluctuation, first, spread_indices(total_strengths, neighbour_count))
            rows.append({"attack": "pfami_met", "source": "subset", "timestep_count": timestep_count,
                         "neighbour_count": neighbour_count, "queries": 2 * timestep_count * (neighbour_count + 1),
                         **summary(scores, is_member)})
        for attack, scores, queries in (
                ("loss", loss_subset(losses, first), timestep_count),
                ("calibrated_loss", calibrated_loss_subset(losses, reference_losses, first), 2 * timestep_count)):
            rows.append({"attack": attack, "source": "subset", "timestep_count": timestep_count,
                         "neighbour_count": 0, "queries": queries, **summary(scores, is_member)})
    for attack, result in attack_metrics.items():
        rows.append({"attack": attack, "source": "metrics.json", "timestep_count": "", "neighbour_count": "",
                     "queries": int(sum(result["queries_per_record"].values())),
                     **{key: result[key] for key in ("auc", TPR_AT_1_PERCENT, "tpr_at_0.001_fpr")}})
    return rows


def fluctuation_of(attacked: dict[str, np.ndarray], reference: dict[str, np.ndarray], min_loss: float) -> np.ndarray:
    """H of one role's records from its two loss-tensor files, checked to cover the same records."""
    if not np.array_equal(attacked["record_ids"], reference["record_ids"]):
        raise ValueError("attacked-model and reference-model tensors cover different records")
    return calibrated_fluctuation(attacked["losses"], reference["losses"], min_loss)[0]


def mechanism_rows(mechanism: str, target: tuple[dict, dict], shadow: tuple[dict, dict], min_loss: float,
                   nns_settings: dict | None, seed: int) -> list[dict]:
    """PFAMI_Met and (with ``nns_settings``) PFAMI_NNs of one mechanism on the target records.

    ``target`` / ``shadow``: (attacked-model tensor, reference-model tensor) of that role's
    records, already restricted to the ablation's records. PFAMI_NNs trains on the shadow H
    only, as in the main run."""
    target_fluctuation = fluctuation_of(*target, min_loss)
    is_member = target[0]["is_member"]
    strengths = " ".join(f"{value:g}" for value in target[0]["strengths"])
    rows = [{"mechanism": mechanism, "strengths": strengths, "attack": "pfami_met",
             **summary(pfami_met_scores(target_fluctuation), is_member)}]
    if nns_settings is not None:
        _, target_scores = pfami_nns_scores(fluctuation_of(*shadow, min_loss), shadow[0]["is_member"],
                                            target_fluctuation, nns_settings, seed)
        rows.append({"mechanism": mechanism, "strengths": strengths, "attack": "pfami_nns",
                     **summary(target_scores, is_member)})
    return rows


def memorisation_rows(step: int, attacked: dict, reference: dict, min_loss: float) -> list[dict]:
    """PFAMI_Met, loss and calibrated loss of the target model after ``step`` training steps.

    The reference model is the final one at every step: it stands for "a model of this recipe
    that never saw the record", which does not change as the target trains."""
    is_member = attacked["is_member"]
    fluctuation = fluctuation_of(attacked, reference, min_loss)
    return [{"training_step": step, "attack": attack, **summary(scores, is_member)} for attack, scores in (
        ("pfami_met", pfami_met_scores(fluctuation)),
        ("loss", loss_attack(attacked["losses"])),
        ("calibrated_loss", calibrated_loss_attack(attacked["losses"], reference["losses"])))]


def classifier_seed_rows(shadow_fluctuation: np.ndarray, shadow_is_member: np.ndarray,
                         target_fluctuation: np.ndarray, is_member: np.ndarray, classifiers: dict[str, dict],
                         experiment_seed: int, count: int) -> list[dict]:
    """PFAMI_NNs trained once per seed on the same shadow H, for each of ``classifiers`` ({row label:
    the attack's settings}, e.g. the main run's SVM and the authors' ResNet), the main
    run's seed first. A ResNet also gets the ensemble that averages its seeds' scores: the main
    attack with ``classifiers: count``. Each row holds the AUC and TPRs on the target and the FPR
    on the target of the threshold fitted on that classifier's out-of-sample shadow scores.

    The bootstrap intervals of metrics.json resample the records and hold the classifier fixed;
    the spread over these rows is the part they leave out. A change of CPU, which reorders float
    sums, moved the ResNet by about as much."""
    seeds = classifier_seeds(derived_seed(experiment_seed, "attack", "pfami_nns"), count)
    rows = []
    for label, settings in classifiers.items():
        one_classifier = {key: value for key, value in settings.items() if key != "classifiers"}
        runs = []
        for index, seed in enumerate(seeds):
            runs.append(pfami_nns_scores(shadow_fluctuation, shadow_is_member, target_fluctuation, one_classifier, seed))
            rows.append({"classifier": label, "run": str(index), "seed": seed,
                         **_seed_row(*runs[-1], shadow_is_member, is_member)})
        if settings.get("classifier") == "resnet":
            ensemble = [np.mean(np.stack([run[part] for run in runs]), axis=0) for part in (0, 1)]
            rows.append({"classifier": label, "run": "ensemble", "seed": "",
                         **_seed_row(*ensemble, shadow_is_member, is_member)})
    return rows


def _seed_row(shadow_scores, target_scores, shadow_is_member, is_member) -> dict:
    threshold = fit_threshold(shadow_scores, shadow_is_member)
    return {"attack": "pfami_nns", **summary(target_scores, is_member),
            "threshold_fpr": operating_point(target_scores, is_member, threshold)["fpr"]}


# --- tables ---------------------------------------------------------------------------------


def table_csv(rows: list[dict]) -> str:
    """Rows as CSV text; the columns are the first row's keys, floats with 6 significant digits."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: f"{value:.6g}" if isinstance(value, float) else value for key, value in row.items()})
    return buffer.getvalue()


def write_table(rows: list[dict], path) -> None:
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    atomic_write_text(path, table_csv(rows))


def read_table(path) -> list[dict]:
    """A table written by ``write_table``; metric columns back to floats."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    metrics = ("auc", TPR_AT_1_PERCENT, "tpr_at_0.001_fpr")
    return [{key: float(value) if key in metrics else value for key, value in row.items()} for row in rows]
