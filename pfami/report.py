"""The results table in the paper's layout: one block per experiment, one row per attack."""

from __future__ import annotations

from pfami.attacks import BASELINES, DISPLAY_NAMES, PFAMI_ATTACKS
from pfami.config import DEFAULT_DELTA
from pfami.metrics import largest_provable_epsilon
from pfami.sampling import sampling_settings

COLUMNS = (("auc", "AUC"), ("asr", "ASR"), ("tpr_at_0.01_fpr", "TPR@1%FPR"), ("tpr_at_0.001_fpr", "TPR@0.1%FPR"))


def _with_interval(result: dict, key: str) -> str:
    low, high = result["ci95"][key]
    return f"{result[key]:.3f} [{low:.3f}, {high:.3f}]"


COMPARED = COLUMNS[:3]
BLIND_BASELINE_LABEL = "Blind baseline (images only, no model)"
BLIND_WARNING = "Warning: the blind baseline"


def blind_baseline_line(result: dict) -> str:
    """One plain sentence on whether the blind baseline (``pfami.blind_baseline``) tells the target's members
    from its non-members: a warning when the lower bound of its AUC interval is above 0.5."""
    low, high = result["ci95"]["auc"]
    figure = f"AUC {result['auc']:.3f} [{low:.3f}, {high:.3f}]"
    if low > 0.5:
        return (f"{BLIND_WARNING}, which sees only the images and never queries the model, tells the members from "
                f"the non-members ({figure}): the two sets differ as images, so the attacks' AUCs above measure that "
                "difference as well as any leakage.")
    return (f"The blind baseline, which sees only the images and never queries the model, does not tell the members "
            f"from the non-members ({figure}, the interval reaching 0.5): the attacks' AUCs are not a difference "
            "between the two sets of images that it can see.")


def intervals_overlap(first: list[float], second: list[float]) -> bool:
    return first[0] <= second[1] and second[0] <= first[1]


def comparison_line(attacks: dict[str, dict]) -> str:
    """PFAMI (the better of ``PFAMI_ATTACKS``) against the best of ``BASELINES`` on AUC, ASR and
    TPR@1%FPR, and whether their 95% intervals overlap; empty when either side is not run.

    "Best" is picked per metric by the point estimate on the target records, after the fact: it
    reports, it selects no attack setting."""
    pfami = [name for name in PFAMI_ATTACKS if name in attacks]
    baselines = [name for name in BASELINES if name in attacks]
    if not pfami or not baselines:
        return ""
    parts = []
    for key, title in COMPARED:
        best_pfami = max(pfami, key=lambda name: attacks[name][key])
        best_baseline = max(baselines, key=lambda name: attacks[name][key])
        ours, theirs = attacks[best_pfami], attacks[best_baseline]
        verdict = ("higher" if ours[key] > theirs[key] else "lower" if ours[key] < theirs[key] else "equal")
        overlap = "intervals overlap" if intervals_overlap(ours["ci95"][key], theirs["ci95"][key]) else \
            "intervals do not overlap"
        parts.append(f"{title} {verdict}: {DISPLAY_NAMES[best_pfami]} {ours[key]:.3f} vs "
                     f"{DISPLAY_NAMES[best_baseline]} {theirs[key]:.3f} ({overlap})")
    return "PFAMI vs the best baseline (per metric): " + "; ".join(parts) + "."


def sampler_line(sampling_section: dict | None) -> str:
    """What a diffusion experiment varied across samplers, and why its attack scores hold for each of them."""
    settings = sampling_settings(sampling_section)
    samplers = ", ".join(f"{sampler.upper()} ({settings['inference_steps'][sampler]} steps)"
                         for sampler in settings["samplers"])
    return (f"Samplers varied: {samplers}; the sample grids (`figures/samples_{{role}}.png`) show that each generates "
            "images. The scores hold for every sampler: the attacks query the noise predictor (the training "
            "objective), never a sampler, so they are the same whichever sampler generates images.")


TABLE_HEADER = ("Attack", *(title for _, title in COLUMNS), "FPR at ASR threshold", "eps_lb", "Queries")
READING_GUIDE = (
    "Members are the positive class. AUC and TPR at fixed FPR come from the target model's records; "
    "ASR is the accuracy on the target records at a threshold fitted on the shadow model's records "
    "(FPR at that threshold in its own column). Brackets: 95% bootstrap intervals (members and "
    "non-members resampled separately). Queries: network evaluations per record on the target + "
    "reference model. With n non-members the smallest non-zero FPR is 1/n, so TPR@0.1%FPR is the TPR "
    "at zero false positives when n < 1000. eps_lb: the empirical lower bound on the epsilon of any "
    "(epsilon, delta)-DP training that made the target model, from the errors at the ASR threshold "
    "(one-sided 95% Clopper-Pearson bounds on FPR and FNR; delta in the block's header). The blind baseline is a classifier on the images alone (simple image "
    "statistics, an SVM cross-fitted on the target's records, `pfami/blind_baseline.py`): no model queries, its "
    "ASR at its own decision boundary; if it separates members from non-members, the two sets differ as images.")


def table_rows(metrics: dict) -> list[list[str]]:
    """One experiment's rows of the results table (``TABLE_HEADER``): every attack, then the blind baseline."""
    rows = []
    named = [(DISPLAY_NAMES.get(attack, attack), result) for attack, result in metrics["attacks"].items()]
    if metrics.get("blind_baseline"):
        named.append((BLIND_BASELINE_LABEL, metrics["blind_baseline"]))
    for label, result in named:
        queries = result["queries_per_record"]
        rows.append([label, *(_with_interval(result, key) for key, _ in COLUMNS), f"{result['threshold_fpr']:.3f}",
                     f"{result['eps_lb']:.2f}", f"{queries['target']} + {queries['reference']}"])
    return rows


def records_line(metrics: dict) -> str:
    records, clamped = metrics["records"], metrics["records_with_clamped_loss"]
    delta = metrics.get("delta", DEFAULT_DELTA)
    provable = largest_provable_epsilon(records["target_non_members"], records["target_members"], delta)
    return (f"{records['target_members']} members and {records['target_non_members']} non-members attacked; "
            f"records with a clamped loss ratio: {clamped['target']} (target), {clamped['shadow']} (shadow); "
            f"eps_lb at delta = {delta:g}, at most {provable:.2f} with these record counts.")


def closing_lines(experiment: str, metrics: dict, sampling_by_experiment: dict[str, dict]) -> list[str]:
    """The sentences under an experiment's table: the blind baseline's, the samplers', PFAMI against the best baseline."""
    lines = []
    if metrics.get("blind_baseline"):
        lines.append(blind_baseline_line(metrics["blind_baseline"]))
    if experiment in sampling_by_experiment:
        lines.append(sampler_line(sampling_by_experiment[experiment]))
    comparison = comparison_line(metrics["attacks"])
    return lines + ([comparison] if comparison else [])


def summary_markdown(metrics_by_experiment: dict[str, dict], descriptions: dict[str, str],
                     sampling_by_experiment: dict[str, dict] | None = None) -> str:
    """The markdown table; ``sampling_by_experiment`` holds the ``sampling`` section (possibly empty) of
    every diffusion experiment, whose block then says which samplers were varied."""
    sampling_by_experiment = sampling_by_experiment or {}
    lines = ["# PFAMI reproduction: results", "", READING_GUIDE, ""]
    for experiment, metrics in metrics_by_experiment.items():
        lines += [f"## {experiment}", "", descriptions.get(experiment, ""), "", records_line(metrics), "",
                  "| " + " | ".join(TABLE_HEADER) + " |", "|---" * len(TABLE_HEADER) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(metrics)]
        lines.append("")
        for line in closing_lines(experiment, metrics, sampling_by_experiment):
            lines += [line, ""]
    return "\n".join(lines)


def summary_csv(metrics_by_experiment: dict[str, dict]) -> str:
    header = ["experiment", "attack"]
    for key, _ in COLUMNS:
        header += [key, f"{key}_low", f"{key}_high"]
    header += ["threshold_fpr", "eps_lb", "target_queries", "reference_queries"]
    rows = [",".join(header)]
    for experiment, metrics in metrics_by_experiment.items():
        rows_of = {**metrics["attacks"], **({"blind_baseline": metrics["blind_baseline"]} if "blind_baseline" in metrics
                                            else {})}
        for attack, result in rows_of.items():
            cells = [experiment, attack]
            for key, _ in COLUMNS:
                cells += [f"{result[key]:.6g}", *(f"{bound:.6g}" for bound in result["ci95"][key])]
            cells += [f"{result['threshold_fpr']:.6g}", f"{result['eps_lb']:.6g}", str(result["queries_per_record"]["target"]),
                      str(result["queries_per_record"]["reference"])]
            rows.append(",".join(cells))
    return "\n".join(rows) + "\n"
