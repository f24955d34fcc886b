"""The results table in the paper's layout: one block per experiment, one row per attack."""

from __future__ import annotations

from pfami.attacks import DISPLAY_NAMES

COLUMNS = (("auc", "AUC"), ("asr", "ASR"), ("tpr_at_0.01_fpr", "TPR@1%FPR"), ("tpr_at_0.001_fpr", "TPR@0.1%FPR"))


def _with_interval(result: dict, key: str) -> str:
    low, high = result["ci95"][key]
    return f"{result[key]:.3f} [{low:.3f}, {high:.3f}]"


def summary_markdown(metrics_by_experiment: dict[str, dict], descriptions: dict[str, str]) -> str:
    lines = ["# PFAMI reproduction: results", "",
             "Members are the positive class. AUC and TPR at fixed FPR come from the target model's records; "
             "ASR is the accuracy on the target records at a threshold fitted on the shadow model's records "
             "(FPR at that threshold in its own column). Brackets: 95% bootstrap intervals (members and "
             "non-members resampled separately). Queries: network evaluations per record on the target + "
             "reference model. With n non-members the smallest non-zero FPR is 1/n, so TPR@0.1%FPR is the TPR "
             "at zero false positives when n < 1000.", ""]
    for experiment, metrics in metrics_by_experiment.items():
        records = metrics["records"]
        lines += [f"## {experiment}", "", descriptions.get(experiment, ""), "",
                  f"{records['target_members']} members and {records['target_non_members']} non-members attacked; "
                  f"records with a clamped loss ratio: {metrics['records_with_clamped_loss']['target']} (target), "
                  f"{metrics['records_with_clamped_loss']['shadow']} (shadow).", "",
                  "| Attack | " + " | ".join(title for _, title in COLUMNS) + " | FPR at ASR threshold | Queries |",
                  "|---" * (len(COLUMNS) + 3) + "|"]
        for attack, result in metrics["attacks"].items():
            queries = result["queries_per_record"]
            cells = [_with_interval(result, key) for key, _ in COLUMNS]
            lines.append(f"| {DISPLAY_NAMES.get(attack, attack)} | " + " | ".join(cells) +
                         f" | {result['threshold_fpr']:.3f} | {queries['target']} + {queries['reference']} |")
        lines.append("")
    return "\n".join(lines)


def summary_csv(metrics_by_experiment: dict[str, dict]) -> str:
    header = ["experiment", "attack"]
    for key, _ in COLUMNS:
        header += [key, f"{key}_low", f"{key}_high"]
    header += ["threshold_fpr", "target_queries", "reference_queries"]
    rows = [",".join(header)]
    for experiment, metrics in metrics_by_experiment.items():
        for attack, result in metrics["attacks"].items():
            cells = [experiment, attack]
            for key, _ in COLUMNS:
                cells += [f"{result[key]:.6g}", *(f"{bound:.6g}" for bound in result["ci95"][key])]
            cells += [f"{result['threshold_fpr']:.6g}", str(result["queries_per_record"]["target"]),
                      str(result["queries_per_record"]["reference"])]
            rows.append(",".join(cells))
    return "\n".join(rows) + "\n"
