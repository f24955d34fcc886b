"""Turn the target-model and reference-model loss tensors of one role's records into H."""

import argparse

import numpy as np

from pfami.cli import run
from pfami.fluctuation import calibrated_fluctuation
from pfami.io import load_arrays, save_arrays

REQUIRED = ("losses", "record_ids", "is_member", "timesteps", "strengths")


def main(args: argparse.Namespace) -> None:
    target = load_arrays(args.target_model_losses, REQUIRED)
    reference = load_arrays(args.reference_model_losses, REQUIRED)
    for name in ("record_ids", "timesteps", "strengths"):
        if not np.array_equal(target[name], reference[name]):
            raise ValueError(f"{args.target_model_losses} and {args.reference_model_losses} differ in {name}; "
                             "re-estimate both with the same settings")
    fluctuation, clamped = calibrated_fluctuation(target["losses"], reference["losses"], args.min_loss)
    save_arrays(args.output, fluctuation=fluctuation, clamped=clamped, attacked_model_losses=target["losses"],
                reference_model_losses=reference["losses"], record_ids=target["record_ids"],
                is_member=target["is_member"], timesteps=target["timesteps"], strengths=target["strengths"])
    print(f"H {fluctuation.shape}; {int(clamped.sum())} records with a loss below {args.min_loss} (denominator clamped)")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--target-model-losses", required=True)
parser.add_argument("--reference-model-losses", required=True)
parser.add_argument("--min-loss", type=float, default=1e-6)
parser.add_argument("--output", required=True)

if __name__ == "__main__":
    run(main, parser)
