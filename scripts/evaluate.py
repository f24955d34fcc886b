"""Evaluate every attack of an experiment: metrics.json and one ROC CSV per attack."""

import argparse
import json
from pathlib import Path

import numpy as np

from pfami.attacks import queries_per_record
from pfami.io import atomic_path, atomic_write_text, load_arrays, read_scores
from pfami.cli import json_value, run
from pfami.blind_baseline import DECISION_THRESHOLD
from pfami.config import DEFAULT_DELTA
from pfami.metrics import evaluate_attack, roc_points, target_metrics


def write_roc(path: Path, target_rows: dict) -> None:
    points = roc_points(target_rows["scores"], target_rows["is_member"])
    with atomic_path(path) as temporary:
        np.savetxt(temporary, points[:, :2], delimiter=",", header="fpr,tpr", comments="", fmt="%.6g")


def main(args: argparse.Namespace) -> None:
    target = load_arrays(args.target_features, ("fluctuation", "is_member", "clamped", "record_ids"))
    shadow = load_arrays(args.shadow_features, ("fluctuation", "is_member", "clamped"))
    timestep_count, strength_count = target["fluctuation"].shape[1:]
    metrics = {"experiment": args.experiment,
               "records": {"target_members": int(target["is_member"].sum()),
                           "target_non_members": int((~target["is_member"]).sum()),
                           "shadow_members": int(shadow["is_member"].sum()),
                           "shadow_non_members": int((~shadow["is_member"]).sum())},
               "delta": args.delta,
               "records_with_clamped_loss": {"target": int(target["clamped"].sum()), "shadow": int(shadow["clamped"].sum())},
               "attacks": {}}
    for scores_path in args.scores:
        attack = Path(scores_path).stem
        scores = read_scores(scores_path)
        if not {"shadow", "target"} <= scores.keys():
            raise ValueError(f"{scores_path}: needs both shadow and target rows; rerun the attack")
        shadow_rows, target_rows = scores["shadow"], scores["target"]
        result = evaluate_attack(shadow_rows["scores"], shadow_rows["is_member"], target_rows["scores"],
                                 target_rows["is_member"], args.bootstrap_resamples, args.seed, args.delta)
        result["queries_per_record"] = queries_per_record(attack, timestep_count, strength_count,
                                                          args.attack_settings.get(attack))
        metrics["attacks"][attack] = result
        write_roc(Path(args.roc_dir) / f"{attack}.csv", target_rows)
    if args.blind_baseline_scores:
        target_rows = read_scores(args.blind_baseline_scores)["target"]
        if target_rows["record_ids"].tolist() != target["record_ids"].tolist():
            raise ValueError(f"{args.blind_baseline_scores}: scores other records than the attacks; rerun the blind baseline")
        # Cross-fitted on the target records, so its threshold is its classifier's own boundary, not a shadow fit.
        metrics["blind_baseline"] = {**target_metrics(target_rows["scores"], target_rows["is_member"], DECISION_THRESHOLD,
                                                      args.bootstrap_resamples, args.seed, args.delta),
                                     "queries_per_record": {"target": 0, "reference": 0}}
        write_roc(Path(args.roc_dir) / "blind_baseline.csv", target_rows)
    atomic_write_text(args.output, json.dumps(metrics, indent=1) + "\n")
    for attack, result in metrics["attacks"].items():
        low, high = result["ci95"]["auc"]
        print(f"{attack:>18}: AUC {result['auc']:.3f} [{low:.3f}, {high:.3f}]  "
              f"TPR@1%FPR {result['tpr_at_0.01_fpr']:.3f}  ASR {result['asr']:.3f} (FPR {result['threshold_fpr']:.3f})  "
              f"eps_lb {result['eps_lb']:.2f}")
    if "blind_baseline" in metrics:
        low, high = metrics["blind_baseline"]["ci95"]["auc"]
        print(f"    blind baseline: AUC {metrics['blind_baseline']['auc']:.3f} [{low:.3f}, {high:.3f}] (records only)")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--experiment", required=True)
parser.add_argument("--scores", nargs="+", required=True, help="scores CSVs, one per attack, named {attack}.csv")
parser.add_argument("--target-features", required=True)
parser.add_argument("--shadow-features", required=True)
parser.add_argument("--attack-settings", type=json_value, default={},
                    help="the experiment's attacks section (JSON): some attacks' cost depends on it")
parser.add_argument("--blind-baseline-scores", help="the blind baseline's scores CSV (target rows only)")
parser.add_argument("--bootstrap-resamples", type=int, default=1000)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--delta", type=float, default=DEFAULT_DELTA,
                    help="delta of the empirical epsilon (eps_lb): a DP model's training delta, else evaluation.delta")
parser.add_argument("--output", required=True, help="metrics.json to write")
parser.add_argument("--roc-dir", required=True, help="folder for roc/{attack}.csv")

if __name__ == "__main__":
    run(main, parser)
