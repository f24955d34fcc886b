"""Attacks: each turns the features of the shadow and target records into membership scores.

``score_attack`` is the one entry point; every attack returns (shadow scores, target scores),
higher = member. ``queries_per_record`` says what each costs in network evaluations.

The names and costs here are torch-free, and ``score_attack`` imports the attack modules when it
is called, torch only for the NN attacks: evaluation, figures, the summary and the metric attacks
read this package, and would otherwise spend seconds importing torch in every job.
"""

from __future__ import annotations

import numpy as np

from pfami.attacks.loss import calibrated_loss_attack_queries, loss_attack_queries
from pfami.config import FAMILY_OF, pia_queries, secmi_queries

ATTACKS = ("loss", "calibrated_loss", "pfami_met", "pfami_met_single", "pfami_nns", "pfami_nns_resnet",
           "secmi_stat", "secmi_nns", "pia", "pian")
DISPLAY_NAMES = {"loss": "Loss", "calibrated_loss": "Calibrated loss", "pfami_met": "PFAMI_Met",
                 "pfami_met_single": "PFAMI_Met (one strength)", "pfami_nns": "PFAMI_NNs",
                 "pfami_nns_resnet": "PFAMI_NNs (authors' ResNet)",
                 "secmi_stat": "SecMI_stat", "secmi_nns": "SecMI_NNs", "pia": "PIA", "pian": "PIAN"}
# The PFAMI attacks the summary compares with the best of BASELINES (the one-strength variant
# is the authors' hand-picked column, so it is left out of that comparison).
PFAMI_ATTACKS = ("pfami_met", "pfami_nns")
BASELINES = ("loss", "calibrated_loss", "secmi_stat", "secmi_nns", "pia", "pian")
# The attacks that train a classifier on the shadow records (``pfami.attacks.learned``); with the
# authors' ResNet (``classifier: resnet``) they import torch, the others never do.
NN_ATTACKS = ("pfami_nns", "pfami_nns_resnet", "secmi_nns")
# Variants with a row of their own: (the attack whose code and seed they share, the settings they fix).
# pfami_nns_resnet is PFAMI_NNs with the authors' classifier recipe, beside the default's row.
VARIANTS = {"pfami_nns_resnet": ("pfami_nns", {"classifier": "resnet"})}


def resolved(attack: str, settings: dict) -> tuple[str, dict]:
    """(the attack whose code and classifier seed ``attack`` shares, its settings with a variant's fixed ones)."""
    base, fixed = VARIANTS.get(attack, (attack, {}))
    return base, {**settings, **fixed}


def base_attack(attack: str) -> str:
    return resolved(attack, {})[0]


def uses_torch(attack: str, settings: dict) -> bool:
    """Whether scoring ``attack`` with ``settings`` trains the authors' torch ResNet."""
    base, settings = resolved(attack, settings)
    return base in NN_ATTACKS and settings.get("classifier") == "resnet"


def score_attack(attack: str, settings: dict, shadow: dict[str, np.ndarray], target: dict[str, np.ndarray],
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``shadow`` / ``target``: the arrays of a fluctuation file (H, the loss tensors, labels), or
    for SecMI / PIA attacks those of the family's query file (``pfami.attacks.baseline_queries``)."""
    from pfami.attacks.loss import calibrated_loss_attack, loss_attack
    from pfami.attacks.pfami import pfami_met_scores, pfami_nns_scores

    if attack == "loss":
        return loss_attack(shadow["attacked_model_losses"]), loss_attack(target["attacked_model_losses"])
    if attack == "calibrated_loss":
        return tuple(calibrated_loss_attack(role["attacked_model_losses"], role["reference_model_losses"])
                     for role in (shadow, target))
    if attack in ("pfami_met", "pfami_met_single"):
        strength_index = settings.get("strength_index")
        return pfami_met_scores(shadow["fluctuation"], strength_index), pfami_met_scores(target["fluctuation"], strength_index)
    attack, settings = resolved(attack, settings)
    if attack == "pfami_nns":
        return pfami_nns_scores(shadow["fluctuation"], shadow["is_member"], target["fluctuation"], settings, seed)
    if attack == "secmi_stat":
        return -shadow["secmi_errors"], -target["secmi_errors"]
    if attack == "secmi_nns":
        from pfami.attacks.learned import learned_scores

        return learned_scores(shadow["secmi_error_images"], shadow["is_member"], target["secmi_error_images"], settings,
                              seed)
    if attack in ("pia", "pian"):
        return shadow[f"{attack}_scores"], target[f"{attack}_scores"]
    raise ValueError(f"attacks: unknown attack {attack!r}; choose from {list(ATTACKS)}")


def queries_per_record(attack: str, timestep_count: int, strength_count: int,
                       settings: dict | None = None) -> dict[str, int]:
    """Network evaluations per attacked record on the target and the reference model.

    ``settings``: the attack's config section (SecMI's cost depends on its t_sec and k)."""
    if FAMILY_OF.get(attack) == "secmi":
        settings = settings or {}
        if not {"t_sec", "k"} <= settings.keys():
            raise ValueError(f"{attack}: its cost needs the attack's t_sec and k (pass the attacks config section)")
        return secmi_queries(settings["t_sec"], settings["k"])
    if FAMILY_OF.get(attack) == "pia":
        return pia_queries()
    full = timestep_count * (strength_count + 1)
    return {"loss": loss_attack_queries(timestep_count),
            "calibrated_loss": calibrated_loss_attack_queries(timestep_count),
            "pfami_met": {"target": full, "reference": full},
            "pfami_met_single": {"target": 2 * timestep_count, "reference": 2 * timestep_count},
            "pfami_nns": {"target": full, "reference": full},
            "pfami_nns_resnet": {"target": full, "reference": full}}[attack]
