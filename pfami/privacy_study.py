"""The privacy study (`snakemake --cores all privacy`): the target trained with DP-SGD at several
epsilons, every attack run against each, and the attacks' AUC, TPR@1%FPR and empirical epsilon
set against the theoretical epsilon.

The config's top-level ``privacy`` section names a base experiment and the study's recipe (overrides
of the base's ``splits``, ``model``, ``training``, ``sampling``; a subset of its ``attacks``). From it
this module derives one experiment per epsilon, ``privacy/{base}/eps_{epsilon}``, and a non-private one,
``privacy/{base}/eps_inf``, which every rule of the main run then treats like any experiment (its
files under ``results/privacy/{base}/eps_*/``).

Threat model: the attacker knows the training recipe, DP-SGD and its epsilon included, and has data
from the same distribution. So the roles in ``private_roles`` (default: target and shadow) are
DP-trained at the study's epsilon: the shadow model, on which the threshold and the classifiers are
fitted, must behave like the target. The other roles (default: the reference model, which only measures
how hard each record is for a model that never saw it) are the non-private study's, trained once and
shared by every epsilon. No choice changes the guarantee: the DP theorem bounds every test whose
threshold is fixed independently of the target's members.

Torch-free (``pfami.config`` imports it; the Snakefile does too).
"""

from __future__ import annotations

import copy
import math

INFINITE = "inf"
DEFAULT_PRIVATE_ROLES = ("target", "shadow")
OVERRIDDEN_SECTIONS = ("splits", "model", "training", "sampling")


def epsilon_label(epsilon: float | None) -> str:
    return INFINITE if epsilon is None else f"{epsilon:g}"


def study_name(base: str, epsilon: float | None) -> str:
    return f"privacy/{base}/eps_{epsilon_label(epsilon)}"


def _merged(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def study_experiments(config: dict) -> tuple[dict[str, dict], dict[str, dict[str, str]]]:
    """({derived experiment name: settings}, {name: {shared role: the experiment whose model it uses}});
    both empty without a ``privacy`` section. The first experiment is the non-private one."""
    study = config.get("privacy")
    if not study:
        return {}, {}
    base_name = study["experiment"]
    base = copy.deepcopy(config["experiments"][base_name])
    base.pop("ablations", None)
    # The study's reference model is its own non-private one, shared (``private_roles``), never a crossed DP model.
    base["reference_model"] = "own"
    for section in OVERRIDDEN_SECTIONS:
        if section in study:
            base[section] = _merged(base.get(section, {}), study[section])
    if "attacks" in study:
        base["attacks"] = {attack: base["attacks"][attack] for attack in study["attacks"]}
    delta = study["delta"]
    non_private = copy.deepcopy(base)
    non_private["training"].pop("privacy", None)
    non_private["evaluation"]["delta"] = delta
    plain_name = study_name(base_name, None)
    experiments, shared = {plain_name: non_private}, {}
    private_roles = study.get("private_roles", list(DEFAULT_PRIVATE_ROLES))
    for epsilon in study["epsilons"]:
        private = copy.deepcopy(base)
        private["evaluation"].pop("delta", None)
        private["training"]["privacy"] = {"epsilon": epsilon, "delta": delta, "max_grad_norm": study["max_grad_norm"]}
        name = study_name(base_name, epsilon)
        experiments[name] = private
        shared[name] = {role: plain_name for role in ("target", "shadow", "reference") if role not in private_roles}
    return experiments, shared


def check_study_settings(config: dict) -> None:
    """The study's own keys (``ValueError`` naming ``privacy.KEY``); the derived experiments are then
    checked like any experiment by ``pfami.config``."""
    study = config.get("privacy")
    if not study:
        return
    base = study["experiment"]
    if base not in config["experiments"]:
        raise ValueError(f"privacy.experiment: {base!r} is not an experiment of this config; name one of "
                         f"{sorted(config['experiments'])}")
    experiment = config["experiments"][base]
    if experiment["model"]["family"] not in ("ddpm", "vae"):
        raise ValueError(f"privacy.experiment: {base} is a {experiment['model']['family']} experiment; the study "
                         "DP-trains ddpm and vae models (an LDM's latent U-Net takes training.privacy in its own "
                         "experiment)")
    if "pretrained" in experiment["model"]:
        raise ValueError(f"privacy.experiment: {base} attacks a given model (model.pretrained), which the study "
                         "cannot retrain with DP")
    bad = [epsilon for epsilon in study["epsilons"] if not epsilon > 0]
    if bad:
        raise ValueError(f"privacy.epsilons: {bad} are not positive; give epsilons > 0 (the non-private model, "
                         "epsilon infinity, is always part of the study)")
    if len(set(study["epsilons"])) != len(study["epsilons"]):
        raise ValueError("privacy.epsilons: an epsilon is listed twice")
    members = {**experiment["splits"], **study.get("splits", {})}["members"]
    if not 0 < study["delta"] < 1 / members:
        raise ValueError(f"privacy.delta: {study['delta']} must lie in (0, 1 / members) = (0, {1 / members:.3g}) for "
                         f"{members} members; lower it")
    if not study["max_grad_norm"] > 0:
        raise ValueError(f"privacy.max_grad_norm: {study['max_grad_norm']} is not positive; give a clipping norm > 0")
    if "target" not in study.get("private_roles", DEFAULT_PRIVATE_ROLES):
        raise ValueError("privacy.private_roles: must include target (the model whose privacy is studied)")
    unknown = [attack for attack in study.get("attacks", []) if attack not in experiment["attacks"]]
    if unknown:
        raise ValueError(f"privacy.attacks: {unknown} are not attacks of experiments.{base}; choose from "
                         f"{list(experiment['attacks'])}")


# --- the study's table ---------------------------------------------------------------------------

TABLE_COLUMNS = ("epsilon", "certified_epsilon", "noise_multiplier", "attack", "auc", "auc_low", "auc_high",
                 "tpr_at_0.01_fpr", "tpr_low", "tpr_high", "threshold_fpr", "threshold_tpr", "eps_lb", "delta")


def study_rows(metrics_by_epsilon: dict[str, dict], accounting_by_epsilon: dict[str, dict | None]) -> list[dict]:
    """One row per epsilon (label) and attack."""
    rows = []
    for label, metrics in metrics_by_epsilon.items():
        accounting = accounting_by_epsilon.get(label) or {}
        for attack, result in metrics["attacks"].items():
            rows.append({"epsilon": math.inf if label == INFINITE else float(label),
                         "certified_epsilon": accounting.get("certified_epsilon", math.inf),
                         "noise_multiplier": accounting.get("noise_multiplier", 0.0), "attack": attack,
                         "auc": result["auc"], "auc_low": result["ci95"]["auc"][0], "auc_high": result["ci95"]["auc"][1],
                         "tpr_at_0.01_fpr": result["tpr_at_0.01_fpr"], "tpr_low": result["ci95"]["tpr_at_0.01_fpr"][0],
                         "tpr_high": result["ci95"]["tpr_at_0.01_fpr"][1], "threshold_fpr": result["threshold_fpr"],
                         "threshold_tpr": result["threshold_tpr"], "eps_lb": result["eps_lb"],
                         "delta": metrics["delta"]})
    return rows


def violations(rows: list[dict]) -> list[dict]:
    """Rows whose empirical lower bound exceeds the epsilon the model was trained at: each would mean a
    bug in the DP training, the accountant or the bound."""
    return [row for row in rows if row["eps_lb"] > row["epsilon"]]


def check_no_violation(rows: list[dict]) -> None:
    bad = violations(rows)
    if bad:
        row = max(bad, key=lambda row: row["eps_lb"] - row["epsilon"])
        raise AssertionError(f"privacy study: {len(bad)} empirical lower bound(s) exceed their theoretical epsilon, "
                             f"e.g. {row['attack']} at epsilon {row['epsilon']:g}: eps_lb {row['eps_lb']:.3f} "
                             f"(delta {row['delta']:g}); a bug in the DP training, the accountant or the bound")


def table_csv(rows: list[dict]) -> str:
    lines = [",".join(TABLE_COLUMNS)]
    for row in rows:
        lines.append(",".join(row[key] if isinstance(row[key], str) else f"{row[key]:.6g}" for key in TABLE_COLUMNS))
    return "\n".join(lines) + "\n"


def table_markdown(rows: list[dict], display_names: dict[str, str], largest_provable: float, title: str) -> str:
    lines = [f"# {title}", "",
             "Target (and shadow) trained with DP-SGD at each epsilon; AUC and TPR@1%FPR with 95% bootstrap intervals; "
             "eps_lb: the empirical lower bound on epsilon from the errors at the shadow-fitted threshold (one-sided "
             f"95% Clopper-Pearson bounds); the largest eps_lb these record counts can prove is {largest_provable:.2f}. "
             "Noise: the noise multiplier of the PRV accountant for the epsilon (certified epsilon beside it).", "",
             "| epsilon (certified) | noise multiplier | attack | AUC | TPR@1%FPR | FPR / TPR at threshold | eps_lb |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        epsilon = "inf (no DP)" if math.isinf(row["epsilon"]) else f"{row['epsilon']:g} ({row['certified_epsilon']:.2f})"
        lines.append(f"| {epsilon} | {row['noise_multiplier']:.3f} | {display_names.get(row['attack'], row['attack'])} | "
                     f"{row['auc']:.3f} [{row['auc_low']:.3f}, {row['auc_high']:.3f}] | "
                     f"{row['tpr_at_0.01_fpr']:.3f} [{row['tpr_low']:.3f}, {row['tpr_high']:.3f}] | "
                     f"{row['threshold_fpr']:.3f} / {row['threshold_tpr']:.3f} | {row['eps_lb']:.3f} |")
    violated = violations(rows)
    lines += ["", f"No eps_lb exceeds its theoretical epsilon ({len(rows)} rows checked)." if not violated else
              f"VIOLATION: {len(violated)} rows' eps_lb exceed their epsilon.", ""]
    return "\n".join(lines)
