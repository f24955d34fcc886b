"""The privacy study's table and figures from its experiments' metrics, training records and sample grids;
fails (nothing written) when an empirical epsilon exceeds the epsilon its model was trained at."""

import argparse
import json
from pathlib import Path

import matplotlib.image

from pfami.attacks import DISPLAY_NAMES
from pfami.cli import run
from pfami.io import atomic_write_text
from pfami.metrics import largest_provable_epsilon
from pfami.plots import plot_image_rows, plot_privacy_study
from pfami.privacy_study import check_no_violation, table_csv, table_markdown, study_rows


def main(args: argparse.Namespace) -> None:
    metrics, accounting, samples = {}, {}, {}
    for label, metrics_path, model_dir, samples_path in zip(args.labels, args.metrics, args.models, args.samples):
        metrics[label] = json.loads(Path(metrics_path).read_text())
        accounting[label] = json.loads((Path(model_dir) / "training.json").read_text()).get("privacy")
        samples[label] = matplotlib.image.imread(samples_path)
    rows = study_rows(metrics, accounting)
    check_no_violation(rows)
    first = next(iter(metrics.values()))
    largest = largest_provable_epsilon(first["records"]["target_non_members"], first["records"]["target_members"],
                                       first["delta"])
    title = f"Privacy study of {args.base}: attacks against DP-SGD targets"
    atomic_write_text(args.csv, table_csv(rows))
    atomic_write_text(args.markdown, table_markdown(rows, DISPLAY_NAMES, largest, title))
    plot_privacy_study(rows, DISPLAY_NAMES, largest, title, args.figure)
    plot_image_rows({("no DP" if label == "inf" else f"epsilon {label}") + " (target model; rows: samplers)": image
                     for label, image in samples.items()}, f"{args.base}: target samples by training epsilon",
                    args.samples_figure)
    for row in rows:
        print(f"epsilon {row['epsilon']:>6g}  {row['attack']:>18}: AUC {row['auc']:.3f}  "
              f"TPR@1%FPR {row['tpr_at_0.01_fpr']:.3f}  eps_lb {row['eps_lb']:.3f}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--base", required=True, help="the study's base experiment (for titles)")
parser.add_argument("--labels", nargs="+", required=True, help="epsilon of each experiment (inf: no DP)")
parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json per experiment, in --labels order")
parser.add_argument("--models", nargs="+", required=True, help="target model folder per experiment")
parser.add_argument("--samples", nargs="+", required=True, help="samples_target.png per experiment")
parser.add_argument("--csv", required=True)
parser.add_argument("--markdown", required=True)
parser.add_argument("--figure", required=True)
parser.add_argument("--samples-figure", required=True)

if __name__ == "__main__":
    run(main, parser)
