"""Run one ablation study on existing loss tensors and write its table (CSV) and figure (PNG).

Studies: timesteps, strengths, query_budget (from the target's fluctuation file), mechanisms
(loss tensors per mechanism), memorisation (loss tensors per training snapshot) and
classifier_seeds (PFAMI_NNs retrained with other seeds on the main run's fluctuation files).
"""

import argparse
import json
from pathlib import Path

from pfami import ablation_plots, ablations
from pfami.attacks import resolved
from pfami.attacks.learned import DEFAULT_CLASSIFIER
from pfami.cli import json_value, run
from pfami.io import load_arrays
from pfami.seeding import derived_seed

FEATURES = ("fluctuation", "attacked_model_losses", "reference_model_losses", "is_member", "timesteps", "strengths")
LOSSES = ("losses", "record_ids", "is_member", "strengths")


def timesteps(args: argparse.Namespace) -> tuple[list[dict], str]:
    features = load_arrays(args.features, FEATURES)
    rows = ablations.timestep_rows(features["fluctuation"], features["attacked_model_losses"], features["is_member"],
                                   features["timesteps"].tolist(), args.settings["timestep_counts"])
    ablation_plots.plot_timesteps(rows, f"{args.experiment}: attack success per timestep", args.figure)
    return rows, f"{len(features['timesteps'])} timesteps"


def strengths(args: argparse.Namespace) -> tuple[list[dict], str]:
    features = load_arrays(args.features, FEATURES)
    rows = ablations.strength_rows(features["fluctuation"], features["is_member"], features["strengths"].tolist(),
                                   args.settings["neighbour_counts"])
    ablation_plots.plot_strengths(rows, f"{args.experiment}: PFAMI_Met against the neighbours used", args.figure)
    return rows, f"{len(features['strengths'])} strengths"


def query_budget(args: argparse.Namespace) -> tuple[list[dict], str]:
    features = load_arrays(args.features, FEATURES)
    attack_metrics = json.loads(Path(args.metrics).read_text())["attacks"]
    rows = ablations.query_budget_rows(features["fluctuation"], features["attacked_model_losses"],
                                       features["reference_model_losses"], features["is_member"],
                                       args.settings["timestep_counts"], args.settings["neighbour_counts"],
                                       attack_metrics)
    ablation_plots.plot_query_budget(rows, f"{args.experiment}: attack success against query budget", args.figure)
    return rows, f"{len(rows)} budget points"


def _restricted(paths: dict[str, str], per_part: int | None) -> dict[str, dict]:
    """Load {name: loss tensor file}, each cut to the first ``per_part`` members and hold-outs."""
    tensors = {}
    for name, path in paths.items():
        arrays = load_arrays(path, LOSSES)
        tensors[name] = ablations.select_records(
            arrays, arrays["record_ids"][ablations.first_per_part(arrays["is_member"], per_part)])
    return tensors


def mechanisms(args: argparse.Namespace) -> tuple[list[dict], str]:
    rows = []
    for mechanism, paths in args.losses.items():
        tensors = _restricted(paths, args.settings["records_per_part"])
        rows += ablations.mechanism_rows(
            mechanism, (tensors["target-on-target"], tensors["reference-on-target"]),
            (tensors["shadow-on-shadow"], tensors["reference-on-shadow"]), args.min_loss, args.nns_settings,
            derived_seed(args.seed, "attack", "pfami_nns"))
    if args.figure:
        ablation_plots.plot_mechanisms(rows, f"{args.experiment}: PFAMI per perturbation mechanism", args.figure)
    return rows, f"{len(args.losses)} mechanism(s)"


def mechanism_figure(args: argparse.Namespace) -> tuple[list[dict], str]:
    """Join the per-mechanism tables (one job each) into one table and figure."""
    rows = [row for path in args.tables for row in ablations.read_table(path)]
    ablation_plots.plot_mechanisms(rows, f"{args.experiment}: PFAMI per perturbation mechanism", args.figure)
    return rows, f"{len(args.tables)} mechanisms"


def memorisation(args: argparse.Namespace) -> tuple[list[dict], str]:
    reference = _restricted({"reference": args.reference_losses}, args.settings["records_per_part"])["reference"]
    rows = []
    for step, path in sorted(args.losses.items(), key=lambda item: int(item[0])):
        attacked = _restricted({"target": path}, args.settings["records_per_part"])["target"]
        rows += ablations.memorisation_rows(int(step), attacked, reference, args.min_loss)
    ablation_plots.plot_memorisation(rows, f"{args.experiment}: membership leakage over training", args.figure)
    return rows, f"{len(args.losses)} training steps"


def classifier_seeds(args: argparse.Namespace) -> tuple[list[dict], str]:
    shadow = load_arrays(args.shadow_features, FEATURES)
    target = load_arrays(args.features, FEATURES)
    count = args.settings["classifier_seeds"]
    # The main run's classifier and, where the experiment runs it, the authors' ResNet beside it.
    classifiers = {args.nns_settings.get("classifier", DEFAULT_CLASSIFIER): args.nns_settings}
    if args.resnet_settings is not None:
        classifiers.setdefault("resnet", resolved("pfami_nns_resnet", args.resnet_settings)[1])
    rows = ablations.classifier_seed_rows(shadow["fluctuation"], shadow["is_member"], target["fluctuation"],
                                          target["is_member"], classifiers, args.seed, count)
    ablation_plots.plot_classifier_seeds(rows, f"{args.experiment}: PFAMI_NNs per classifier seed", args.figure)
    return rows, f"{count} classifier seeds x {len(classifiers)} classifier(s)"


STUDIES = {"timesteps": timesteps, "strengths": strengths, "query_budget": query_budget, "mechanisms": mechanisms,
           "mechanism_figure": mechanism_figure, "memorisation": memorisation, "classifier_seeds": classifier_seeds}
# The studies that train PFAMI_NNs; the others need no torch.
TRAINING_STUDIES = ("mechanisms", "classifier_seeds")


def main(args: argparse.Namespace) -> None:
    if args.study in TRAINING_STUDIES:
        import torch

        torch.set_num_threads(args.threads)
    rows, what = STUDIES[args.study](args)
    ablations.write_table(rows, args.table)
    figure = f", figure {args.figure}" if args.figure else ""
    print(f"{args.study} ablation over {what}: {len(rows)} rows in {args.table}{figure}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("study", choices=sorted(STUDIES))
parser.add_argument("--experiment", required=True)
parser.add_argument("--settings", type=json_value, required=True,
                    help="the experiment's ablations section with defaults filled in (JSON)")
parser.add_argument("--features",
                    help="fluctuation file of the target records (timesteps, strengths, query_budget, classifier_seeds)")
parser.add_argument("--shadow-features", help="classifier_seeds: fluctuation file of the shadow records")
parser.add_argument("--metrics", help="metrics.json (query_budget)")
parser.add_argument("--losses", type=json_value, default={},
                    help="mechanisms: {mechanism: {'target-on-target': path, ...}}; memorisation: {step: path} (JSON)")
parser.add_argument("--reference-losses", help="memorisation: the reference model's tensor on the target records")
parser.add_argument("--min-loss", type=float, default=1e-6)
parser.add_argument("--nns-settings", type=json_value, default=None,
                    help="mechanisms, classifier_seeds: attacks.pfami_nns (JSON)")
parser.add_argument("--resnet-settings", type=json_value, default=None,
                    help="classifier_seeds: attacks.pfami_nns_resnet (JSON; null where the experiment does not run it)")
parser.add_argument("--seed", type=int, default=0,
                    help="mechanisms, classifier_seeds: the experiment seed (PFAMI_NNs derives its own)")
parser.add_argument("--threads", type=int, default=1, help="torch threads (PFAMI_NNs training)")
parser.add_argument("--table", required=True, help="CSV to write")
parser.add_argument("--figure", help="PNG to write (mechanisms: optional, one mechanism's rows only)")
parser.add_argument("--tables", nargs="+", default=[], help="mechanism_figure: the per-mechanism CSVs")

if __name__ == "__main__":
    run(main, parser)
