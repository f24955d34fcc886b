"""How much the learned attacks move with their classifier's seed and with last-bit changes of their inputs.

    .venv/bin/python benchmarks/learned_attack_stability.py [--resnet-attacks pfami_nns]

On a finished main run's features (results/{exp}/fluctuations/*.npz, and SecMI's query files), for
every learned attack of each experiment and for each classifier (the config's default, and the
authors' ResNet recipe with the config's or their epochs and learning rate):

- 5 classifier seeds (the main run's first, as the classifier-seed ablation draws them): the AUC on
  the target records and the FPR on the target of the threshold fitted on the shadow records'
  out-of-fold scores; their standard deviation and range;
- every feature multiplied by (1 + 1e-6 x N(0, 1)), about what another CPU's kernels leave in them:
  the change of the AUC at the main seed;
- CPU seconds of one scoring (the classifier work alone; the job adds Python's start-up).

The target's labels are used to report these figures only. The authors' ResNet on SecMI's error
images costs about 4 CPU-minutes per seed, so by default it is measured for PFAMI_NNs only
(``--resnet-attacks pfami_nns secmi_nns`` for both). Written to
benchmarks/results/learned_attack_stability.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from pfami.attacks import score_attack  # noqa: E402
from pfami.io import load_arrays  # noqa: E402
from pfami.metrics import fit_threshold, operating_point, roc_summary  # noqa: E402
from pfami.seeding import classifier_seeds, derived_seed  # noqa: E402

FEATURES = {"pfami_nns": ("fluctuations/{role}.npz", "fluctuation"),
            "secmi_nns": ("baselines/secmi-{role}-on-{role}.npz", "secmi_error_images")}
AUTHORS_RECIPE = {"classifier": "resnet", "epochs": 60, "learning_rate": 0.01}
SEEDS = 5


def measure(attack: str, settings: dict, shadow: dict, target: dict, experiment_seed: int) -> dict:
    seeds = classifier_seeds(derived_seed(experiment_seed, "attack", attack), SEEDS)
    aucs, fprs, cpu = [], [], []
    for seed in seeds:
        start = time.process_time()
        shadow_scores, target_scores = score_attack(attack, settings, shadow, target, seed)
        cpu.append(time.process_time() - start)
        aucs.append(roc_summary(target_scores, target["is_member"])["auc"])
        threshold = fit_threshold(shadow_scores, shadow["is_member"])
        fprs.append(operating_point(target_scores, target["is_member"], threshold)["fpr"])
    rng = np.random.default_rng(12345)
    perturbed = [{**role, **{name: (values * (1 + 1e-6 * rng.normal(size=values.shape))).astype(values.dtype)
                             for name, values in role.items() if name in ("fluctuation", "secmi_error_images")}}
                 for role in (shadow, target)]
    _, target_scores = score_attack(attack, settings, *perturbed, seeds[0])
    perturbed_auc = roc_summary(target_scores, target["is_member"])["auc"]
    return {"settings": settings, "seeds": seeds, "auc": aucs, "auc_sd": float(np.std(aucs, ddof=1)),
            "threshold_fpr": fprs, "threshold_fpr_range": float(max(fprs) - min(fprs)),
            "perturbation_auc_change": abs(perturbed_auc - aucs[0]),
            "cpu_seconds_per_scoring": round(float(np.mean(cpu)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(PROJECT / "config/config.yaml"))
    parser.add_argument("--results", default=str(PROJECT / "results"))
    parser.add_argument("--resnet-attacks", nargs="*", default=["pfami_nns"])
    parser.add_argument("--output", default=str(PROJECT / "benchmarks/results/learned_attack_stability.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as the workflow's scoring jobs
    config = yaml.safe_load(Path(args.config).read_text())
    measured = {}
    for experiment, settings in config["experiments"].items():
        for attack, (pattern, array) in FEATURES.items():
            if attack not in settings["attacks"]:
                continue
            roles = {role: load_arrays(Path(args.results) / experiment / pattern.format(role=role), (array, "is_member"))
                     for role in ("shadow", "target")}
            resnet = {**AUTHORS_RECIPE, **settings["attacks"].get("pfami_nns_resnet", {})}
            candidates = {"default": settings["attacks"][attack]}
            if attack in args.resnet_attacks:
                candidates["authors' ResNet"] = resnet
            for name, classifier_settings in candidates.items():
                key = f"{experiment}/{attack}/{name}"
                measured[key] = measure(attack, classifier_settings, roles["shadow"], roles["target"],
                                        settings["seed"])
                row = measured[key]
                print(f"{key:>40}: AUC {min(row['auc']):.4f}-{max(row['auc']):.4f} (sd {row['auc_sd']:.4f}), "
                      f"threshold FPR {min(row['threshold_fpr']):.3f}-{max(row['threshold_fpr']):.3f}, "
                      f"1e-6 change {row['perturbation_auc_change']:.5f}, {row['cpu_seconds_per_scoring']} CPU-s",
                      flush=True)
    Path(args.output).write_text(json.dumps(measured, indent=1) + "\n")


if __name__ == "__main__":
    main()
