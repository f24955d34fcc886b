"""Train an experiment's shared LDM autoencoder on records that no attack targets (outside all six splits)."""

import argparse

import torch

from pfami.cli import json_value, run
from pfami.data import DEFAULT_CACHE_DIR, open_split_data, records_outside_splits, to_model_range
from pfami.likelihood import resolve_device
from pfami.models.ldm import train_autoencoder
from pfami.seeding import derived_seed


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    images, splits = open_split_data(args.data, args.splits_file, args.cache_dir)
    seed = derived_seed(args.seed, "train", "autoencoder")
    chosen = records_outside_splits(splits, len(images), args.autoencoder["training_records"], seed)
    curve = train_autoencoder(to_model_range(images, chosen), args.autoencoder, seed, args.output, args.state,
                              resolve_device(args.device))
    print(f"trained the shared autoencoder on {len(chosen)} records outside the splits for {len(curve)} steps; "
          f"final loss (mean of last 100 steps) {sum(curve[-100:]) / len(curve[-100:]):.4f}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--autoencoder", type=json_value, required=True,
                    help="the experiment's model.autoencoder section (JSON)")
parser.add_argument("--seed", type=int, required=True, help="the experiment seed")
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--output", required=True, help="autoencoder folder to write")
parser.add_argument("--state", required=True, help="resumable training state file")
parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where preprocessed images are cached")

if __name__ == "__main__":
    run(main, parser)
