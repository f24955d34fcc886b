"""Query one model on one role's records for a baseline family (SecMI or PIA) and store the results."""

import argparse

import torch

from pfami.attacks.baseline_queries import FAMILIES, query_family
from pfami.cli import json_value, run
from pfami.data import load_dataset, load_splits, records_of
from pfami.io import save_arrays
from pfami.likelihood import resolve_device, unet_noise_predictor
from pfami.models.ddpm import load_ddpm


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images = load_dataset(args.data)
    record_ids, records, is_member = records_of(images, load_splits(args.splits_file, images), args.records,
                                                args.attacked_per_part)
    unet, scheduler = load_ddpm(args.model_dir, device)
    arrays = query_family(args.family, args.settings, unet_noise_predictor(unet), torch.from_numpy(records),
                          scheduler.alphas_cumprod, args.batch_size, device)
    save_arrays(args.output, record_ids=record_ids, is_member=is_member, **arrays)
    spent = ", ".join(f"{name.removesuffix('_evaluations')} {float(value):g}"
                      for name, value in arrays.items() if name.endswith("_evaluations"))
    print(f"{args.family} queries of the {args.model_name} model on {len(records)} {args.records} records; "
          f"network evaluations per record: {spent}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--family", choices=FAMILIES, required=True)
parser.add_argument("--settings", type=json_value, required=True,
                    help="{attack: query settings} of the family's configured attacks (JSON)")
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--records", choices=["target", "shadow"], required=True, help="whose members and hold-outs")
parser.add_argument("--attacked-per-part", type=json_value, default=None)
parser.add_argument("--model-dir", required=True)
parser.add_argument("--model-name", required=True, help="the model's role (for the log)")
parser.add_argument("--batch-size", type=int, required=True, help="records per forward pass")
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--output", required=True, help="query file to write (.npz)")

if __name__ == "__main__":
    run(main, parser)
