"""The most exposed records: which of the target's records the attacks rank most member-like.

The ranking is reported, not used to choose anything. The attack it is shown for, the "best" one, is
the one with the highest AUC on the *shadow* model's records (the learned attacks' shadow scores are
out of sample), so no target label picks it; the table holds every attack's scores and ranks anyway.
"""

from __future__ import annotations

import numpy as np

from pfami.metrics import roc_summary

BLIND_BASELINE = "blind_baseline"


def best_attack_on_shadow(shadow_rows: dict[str, dict[str, np.ndarray]]) -> tuple[str, float]:
    """(the attack of highest AUC on the shadow records, that AUC); ties go to the first given."""
    aucs = {attack: roc_summary(rows["scores"], rows["is_member"])["auc"] for attack, rows in shadow_rows.items()}
    best = max(aucs, key=lambda attack: (aucs[attack], -list(aucs).index(attack)))
    return best, aucs[best]


def ranks(scores: np.ndarray) -> np.ndarray:
    """Rank 1 = the highest score; tied records share the best rank of their group."""
    scores = np.asarray(scores, dtype=np.float64)
    ordered = np.sort(scores)[::-1]
    return 1 + np.searchsorted(-ordered, -scores, side="left")


def score_table(target_rows: dict[str, dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(record ids, is_member, {attack: scores}) of the target records, every attack's rows put in the
    order of the first one's; records that another attack lacks or labels otherwise are refused."""
    first = next(iter(target_rows.values()))
    record_ids, is_member = first["record_ids"], first["is_member"]
    position = {int(record): index for index, record in enumerate(record_ids)}
    table = {}
    for attack, rows in target_rows.items():
        if sorted(rows["record_ids"].tolist()) != sorted(position):
            raise ValueError(f"{attack}: scores other target records than {next(iter(target_rows))}; rerun it")
        order = np.array([position[int(record)] for record in rows["record_ids"]])
        scores = np.empty(len(record_ids))
        scores[order] = rows["scores"]
        labels = np.empty(len(record_ids), dtype=bool)
        labels[order] = rows["is_member"]
        if not np.array_equal(labels, is_member):
            raise ValueError(f"{attack}: its member labels differ from {next(iter(target_rows))}'s; rerun it")
        table[attack] = scores
    return record_ids, is_member, table


def score_table_csv(record_ids: np.ndarray, is_member: np.ndarray, table: dict[str, np.ndarray],
                    order_by: str) -> str:
    """Every target record's score and rank under every attack, sorted by the rank under ``order_by``."""
    rank_of = {attack: ranks(scores) for attack, scores in table.items()}
    header = ["record_id", "is_member", *(f"{kind}_{attack}" for attack in table for kind in ("score", "rank"))]
    lines = [",".join(header)]
    for index in np.argsort(rank_of[order_by], kind="stable"):
        cells = [str(int(record_ids[index])), str(int(is_member[index]))]
        for attack in table:
            cells += [f"{table[attack][index]:.9g}", str(int(rank_of[attack][index]))]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def most_exposed(scores: np.ndarray, is_member: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the ``count`` members ranked highest, those of the ``count`` non-members ranked highest),
    best first (ties by position)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    members = order[np.asarray(is_member, dtype=bool)[order]]
    non_members = order[~np.asarray(is_member, dtype=bool)[order]]
    return members[:count], non_members[:count]
