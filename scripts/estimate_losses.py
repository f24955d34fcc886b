"""Estimate the loss tensor L[record, timestep or ELBO draw, strength] of one model on one role's records."""

import argparse

import numpy as np
import torch

from pfami.cli import json_value, run
from pfami.data import DEFAULT_CACHE_DIR, load_splits, open_images, records_of
from pfami.io import save_arrays
from pfami.likelihood import model_losses, resolve_device
from pfami.models import FAMILIES, folder_family


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images = open_images(args.data, args.cache_dir)
    record_ids, records, is_member = records_of(images, load_splits(args.splits_file, images), args.records,
                                                args.attacked_per_part)
    family = folder_family(args.model_dir, args.family)
    losses, first_axis = model_losses(args.model_dir, family, records, record_ids, args.estimation, args.perturbation,
                                      args.seed, args.model_name, device)
    # For a VAE, "timesteps" holds the draw indices: the axis downstream steps read is the same.
    save_arrays(args.output, losses=losses, record_ids=record_ids, is_member=is_member, timesteps=first_axis,
                strengths=np.array(args.perturbation["strengths"]))
    print(f"{args.model_name} {family} model on {len(records)} {args.records} records: loss tensor {losses.shape}, "
          f"mean own loss {losses[:, :, 0].mean():.4f}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--records", choices=["target", "shadow", "reference"], required=True,
                    help="whose members and hold-outs to evaluate")
parser.add_argument("--attacked-per-part", type=json_value, default=None)
parser.add_argument("--model-dir", required=True)
parser.add_argument("--model-name", required=True, help="the model's role; keys the noise when it is not shared")
parser.add_argument("--family", choices=FAMILIES, default=None,
                    help="the family the experiment expects; a folder of another family is refused")
parser.add_argument("--estimation", type=json_value, required=True, help="the experiment's estimation section (JSON)")
parser.add_argument("--perturbation", type=json_value, required=True, help="the perturbation section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--output", required=True, help="loss tensor file to write (.npz)")
parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where preprocessed images are cached")

if __name__ == "__main__":
    run(main, parser)
