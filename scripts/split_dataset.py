"""Draw the six disjoint record sets of an experiment and fingerprint its data."""

import argparse

from pfami.cli import json_value, run
from pfami.data import DEFAULT_CACHE_DIR, fingerprint, given_splits, make_splits, open_images, save_splits


def main(args: argparse.Namespace) -> None:
    # Only the count and the fingerprint are needed: the images stay uint8 (a memmap for file sources).
    images = open_images(args.data, args.cache_dir)
    splits = make_splits(len(images), args.splits, args.seed, given_splits(args.splits, images))
    save_splits(args.output, splits, fingerprint(images), len(images))
    print(f"{len(images)} records of shape {images.shape[1:]}; " +
          ", ".join(f"{name} {len(indices)}" for name, indices in splits.items()))


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON; with an audit's "
                    "image folders under given_folders, see pfami.data.with_given_folders)")
parser.add_argument("--splits", type=json_value, required=True, help="the experiment's splits section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--output", required=True, help="split file to write (JSON)")
parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where preprocessed images are cached")

if __name__ == "__main__":
    run(main, parser)
