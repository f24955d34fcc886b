"""Draw an experiment's figures: ROC, mean fluctuation matrices, score distributions, loss curves."""

import argparse
import json
from pathlib import Path

import numpy as np

from pfami.attacks import BASELINES, DISPLAY_NAMES
from pfami.cli import run
from pfami.io import load_arrays, read_scores
from pfami.models import folder_family
from pfami.models.folders import read_loss_curve
from pfami.plots import plot_fluctuation_matrices, plot_loss_curves, plot_roc, plot_score_distributions
from pfami.report import BLIND_BASELINE_LABEL


def main(args: argparse.Namespace) -> None:
    metrics = json.loads(Path(args.metrics).read_text())
    figures = Path(args.figures_dir)
    curves, aucs, distributions = {}, {}, {}
    for attack, result in metrics["attacks"].items():
        label = DISPLAY_NAMES.get(attack, attack)
        curves[label] = np.loadtxt(Path(args.roc_dir) / f"{attack}.csv", delimiter=",", skiprows=1, ndmin=2)
        aucs[label] = result["auc"]
        target_rows = read_scores(Path(args.scores_dir) / f"{attack}.csv")["target"]
        distributions[label] = (target_rows["scores"][target_rows["is_member"]],
                                target_rows["scores"][~target_rows["is_member"]])
    if "blind_baseline" in metrics:
        curves[BLIND_BASELINE_LABEL] = np.loadtxt(Path(args.roc_dir) / "blind_baseline.csv", delimiter=",", skiprows=1,
                                                  ndmin=2)
        aucs[BLIND_BASELINE_LABEL] = metrics["blind_baseline"]["auc"]
    non_members = metrics["records"]["target_non_members"]
    plot_roc(curves, aucs, f"{args.experiment}: membership inference ROC", figures / "roc.png", 1.0 / non_members,
             baseline_labels={*(DISPLAY_NAMES[name] for name in BASELINES), BLIND_BASELINE_LABEL})
    plot_score_distributions(distributions, f"{args.experiment}: member vs non-member scores",
                             figures / "score_distributions.png")

    is_vae = folder_family(args.model_dirs[0]) == "vae"
    target = load_arrays(args.target_features, ("fluctuation", "is_member", "timesteps", "strengths"))
    member = target["is_member"]
    plot_fluctuation_matrices(target["fluctuation"][member].mean(axis=0), target["fluctuation"][~member].mean(axis=0),
                              target["timesteps"].tolist(), target["strengths"].tolist(),
                              f"{args.experiment}: calibrated probabilistic fluctuation", figures / "fluctuation.png",
                              row_label="ELBO draw" if is_vae else "timestep")
    plot_loss_curves({Path(folder).name: read_loss_curve(folder) for folder in args.model_dirs},
                     f"{args.experiment}: training loss", figures / "training_loss.png",
                     quantity="negative ELBO" if is_vae else "denoising loss")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--experiment", required=True)
parser.add_argument("--metrics", required=True)
parser.add_argument("--roc-dir", required=True)
parser.add_argument("--scores-dir", required=True)
parser.add_argument("--target-features", required=True)
parser.add_argument("--model-dirs", nargs="+", required=True)
parser.add_argument("--figures-dir", required=True)

if __name__ == "__main__":
    run(main, parser)
