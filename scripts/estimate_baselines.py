"""Query models on their own role's records for a baseline family (SecMI or PIA) and store the results.

The workflow passes the target and the shadow model together: one process imports torch and
diffusers (seconds) once for both."""

import argparse

import torch

from pfami.attacks.baseline_queries import FAMILIES, query_family
from pfami.cli import json_value, run
from pfami.data import ATTACKED_ROLES, DEFAULT_CACHE_DIR, open_split_data, records_of
from pfami.io import save_arrays
from pfami.likelihood import resolve_device, unet_noise_predictor
from pfami.models import folder_family
from pfami.models.ddpm import load_ddpm


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images, splits = open_split_data(args.data, args.splits_file, args.cache_dir)
    # Every model is checked before the first query: a bad one fails the job before any file is written.
    for role, model_dir, _ in args.model:
        if role not in ATTACKED_ROLES:
            raise ValueError(f"--model {role}: the role must be one of {', '.join(ATTACKED_ROLES)} "
                             "(its model is queried on that role's records)")
        folder_family(model_dir, "ddpm")
    for role, model_dir, output in args.model:
        record_ids, records, is_member = records_of(images, splits, role, args.attacked_per_part)
        unet, scheduler = load_ddpm(model_dir, device)
        arrays = query_family(args.family, args.settings, unet_noise_predictor(unet), torch.from_numpy(records),
                              scheduler.alphas_cumprod, args.batch_size, device)
        save_arrays(output, record_ids=record_ids, is_member=is_member, **arrays)
        spent = ", ".join(f"{name.removesuffix('_evaluations')} {float(value):g}"
                          for name, value in arrays.items() if name.endswith("_evaluations"))
        print(f"{args.family} queries of the {role} model on {len(records)} {role} records; "
              f"network evaluations per record: {spent}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--family", choices=FAMILIES, required=True)
parser.add_argument("--settings", type=json_value, required=True,
                    help="{attack: query settings} of the family's configured attacks (JSON)")
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--attacked-per-part", type=json_value, default=None)
parser.add_argument("--model", nargs=3, action="append", required=True, metavar=("ROLE", "FOLDER", "OUTPUT"),
                    help="a role (target or shadow) whose model in FOLDER is queried on the role's own members and "
                         "hold-outs, and the query file to write (.npz); repeat for more models")
parser.add_argument("--batch-size", type=int, required=True, help="records per forward pass")
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where preprocessed images are cached")

if __name__ == "__main__":
    run(main, parser)
