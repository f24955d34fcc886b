"""What common random numbers do to H and to the attack, against the authors' independent noise.

    PYTHONPATH=. python benchmarks/common_noise.py --target-model results/digits_ddpm/models/target \
        --reference-model results/digits_ddpm/models/reference --splits-file results/digits_ddpm/splits.json \
        [--per-part 100] [--noise-seeds 0 1 2]

For each noise mode (common / independent) and each noise seed, estimates the target's and the
reference's loss tensors on the first ``per-part`` target members and hold-outs, forms
``H = r_target - r_reference`` and the PFAMI_Met score (mean of H). Reports, per mode, the
spread of H across noise seeds (the standard deviation over seeds of each record's H entry and of
its score, averaged over records) and AUC / TPR at 1% FPR of PFAMI_Met for each seed. The
target's labels are used only to report, never to choose anything. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from pfami.attacks.pfami import pfami_met_scores
from pfami.data import open_split_data, records_of
from pfami.fluctuation import calibrated_fluctuation
from pfami.likelihood import diffusion_losses, unet_noise_predictor
from pfami.metrics import roc_summary
from pfami.models.ddpm import load_ddpm

PROJECT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-model", required=True)
    parser.add_argument("--reference-model", required=True)
    parser.add_argument("--splits-file", required=True)
    parser.add_argument("--per-part", type=int, default=100, help="target members and as many hold-outs")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: estimation.batch_size of the config")
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "common_noise.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    experiment = yaml.safe_load((PROJECT / "config" / "config.yaml").read_text())["experiments"]["digits_ddpm"]
    estimation, perturbation = experiment["estimation"], experiment["perturbation"]
    images, splits = open_split_data(experiment["data"], args.splits_file)
    record_ids, records, is_member = records_of(images, splits, "target", args.per_part)
    models = {name: load_ddpm(folder, torch.device("cpu"))
              for name, folder in (("target", args.target_model), ("reference", args.reference_model))}

    def fluctuation(common_noise: bool, seed: int) -> np.ndarray:
        losses = {name: diffusion_losses(unet_noise_predictor(unet), scheduler.alphas_cumprod, records, record_ids,
                                         estimation["timesteps"], perturbation["mechanism"],
                                         perturbation["strengths"], seed, common_noise, name,
                                         args.batch_size or estimation["batch_size"], show_progress=False)
                  for name, (unet, scheduler) in models.items()}
        return calibrated_fluctuation(losses["target"], losses["reference"],
                                      experiment["fluctuation"]["min_loss"])[0]

    result = {"records": len(records), "members": int(is_member.sum()), "noise_seeds": args.noise_seeds,
              "target_model": args.target_model, "reference_model": args.reference_model, "modes": {}}
    for mode, common_noise in (("common", True), ("independent", False)):
        fluctuations = np.stack([fluctuation(common_noise, seed) for seed in args.noise_seeds])  # [S, R, M, N]
        scores = np.stack([pfami_met_scores(h) for h in fluctuations])  # [S, R]
        per_seed = [roc_summary(score, is_member) for score in scores]
        result["modes"][mode] = {
            "mean_over_records_of_std_over_seeds_of_H": float(fluctuations.std(axis=0, ddof=1).mean()),
            "mean_over_records_of_std_over_seeds_of_score": float(scores.std(axis=0, ddof=1).mean()),
            "std_over_records_of_score": float(scores.std(axis=1).mean()),
            "auc_per_seed": [row["auc"] for row in per_seed],
            "tpr_at_1pct_fpr_per_seed": [row["tpr_at_0.01_fpr"] for row in per_seed],
            "auc_of_score_averaged_over_seeds": roc_summary(scores.mean(axis=0), is_member)["auc"],
        }
        print(mode, json.dumps(result["modes"][mode]), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
