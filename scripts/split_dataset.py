"""Draw the six disjoint record sets of an experiment and fingerprint its data."""

import argparse

from pfami.cli import json_value, run
from pfami.data import fingerprint, given_splits, load_dataset, make_splits, save_splits


def main(args: argparse.Namespace) -> None:
    images = load_dataset(args.data)
    splits = make_splits(len(images), args.splits, args.seed, given_splits(args.splits))
    save_splits(args.output, splits, fingerprint(images), len(images))
    print(f"{len(images)} records of shape {images.shape[1:]}; " +
          ", ".join(f"{name} {len(indices)}" for name, indices in splits.items()))


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits", type=json_value, required=True, help="the experiment's splits section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--output", required=True, help="split file to write (JSON)")

if __name__ == "__main__":
    run(main, parser)
