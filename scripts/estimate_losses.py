"""Estimate the loss tensor L[record, timestep or ELBO draw, strength] of each given model on one role's records.

The workflow passes the attacked model and the reference model together: one process loads the
records and imports torch and diffusers (seconds) once for both tensors."""

import argparse

import numpy as np
import torch

from pfami.cli import json_value, run
from pfami.data import DEFAULT_CACHE_DIR, open_split_data, records_of
from pfami.io import save_arrays
from pfami.likelihood import model_losses, resolve_device
from pfami.models import FAMILIES, folder_family


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images, splits = open_split_data(args.data, args.splits_file, args.cache_dir)
    record_ids, records, is_member = records_of(images, splits, args.records, args.attacked_per_part)
    # Every folder is checked before the first estimation: a bad one fails the job in seconds, not minutes.
    families = [folder_family(model_dir, args.family) for _, model_dir, _ in args.model]
    for (model_name, model_dir, output), family in zip(args.model, families):
        losses, first_axis = model_losses(model_dir, family, records, record_ids, args.estimation, args.perturbation,
                                          args.seed, model_name, device)
        # For a VAE, "timesteps" holds the draw indices: the axis downstream steps read is the same.
        save_arrays(output, losses=losses, record_ids=record_ids, is_member=is_member, timesteps=first_axis,
                    strengths=np.array(args.perturbation["strengths"]))
        print(f"{model_name} {family} model on {len(records)} {args.records} records: loss tensor {losses.shape}, "
              f"mean own loss {losses[:, :, 0].mean():.4f}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--records", choices=["target", "shadow", "reference"], required=True,
                    help="whose members and hold-outs to evaluate")
parser.add_argument("--attacked-per-part", type=json_value, default=None)
parser.add_argument("--model", nargs=3, action="append", required=True, metavar=("NAME", "FOLDER", "OUTPUT"),
                    help="a model to estimate: its role (keys the noise when it is not shared), its folder and "
                         "the loss tensor file to write (.npz); repeat for more models")
parser.add_argument("--family", choices=FAMILIES, default=None,
                    help="the family the experiment expects; a folder of another family is refused")
parser.add_argument("--estimation", type=json_value, required=True, help="the experiment's estimation section (JSON)")
parser.add_argument("--perturbation", type=json_value, required=True, help="the perturbation section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where preprocessed images are cached")

if __name__ == "__main__":
    run(main, parser)
