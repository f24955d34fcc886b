"""Score the shadow and target records with one attack; write record id, role, is_member, score."""

import argparse

import numpy as np

from pfami.attacks import base_attack, score_attack, uses_torch
from pfami.cli import json_value, run
from pfami.io import load_arrays, write_scores
from pfami.seeding import derived_seed


def main(args: argparse.Namespace) -> None:
    if uses_torch(args.attack, args.settings):
        import torch

        # The ResNet's training sums in an order that depends on the thread count: fix it.
        torch.set_num_threads(args.threads)
    shadow = load_arrays(args.shadow_features, ("is_member", "record_ids"))
    target = load_arrays(args.target_features, ("is_member", "record_ids"))
    shadow_scores, target_scores = score_attack(args.attack, args.settings, shadow, target,
                                                derived_seed(args.seed, "attack", base_attack(args.attack)))
    write_scores(args.output, {"shadow": {**shadow, "scores": shadow_scores}, "target": {**target, "scores": target_scores}})
    print(f"{args.attack}: scored {len(shadow_scores)} shadow and {len(target_scores)} target records; "
          f"target score mean {np.mean(target_scores):.4g}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--attack", required=True)
parser.add_argument("--settings", type=json_value, default={}, help="the attack's config section (JSON)")
parser.add_argument("--shadow-features", required=True, help="fluctuation (or baseline query) file of the shadow records")
parser.add_argument("--target-features", required=True, help="fluctuation (or baseline query) file of the target records")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--threads", type=int, default=1,
                    help="torch threads of the authors' ResNet (its scores depend on it; the workflow uses 1)")
parser.add_argument("--output", required=True, help="scores CSV to write")

if __name__ == "__main__":
    run(main, parser)
