"""Train one role's model (target, shadow or reference) on that role's members."""

import argparse

import torch

from pfami.cli import json_value, run
from pfami.data import DEFAULT_CACHE_DIR, open_split_data, to_model_range
from pfami.io import atomic_directory
from pfami.likelihood import resolve_device
from pfami.models import train_model
from pfami.seeding import derived_seed


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    images, splits = open_split_data(args.data, args.splits_file, args.cache_dir)
    if args.role == "target" and args.model.get("pretrained"):
        # An audit of a model trained elsewhere: take it as it is; only shadow and reference are trained.
        # (diffusers is imported only where it is needed: it costs seconds per job, a VAE needs none of it.)
        from pfami.models.ddpm import adopt_pretrained_ddpm
        adopt_pretrained_ddpm(args.model["pretrained"], args.output, images.shape[-1], images.shape[1])
        print(f"adopted the target model {args.model['pretrained']} (trained elsewhere)")
        return
    members = to_model_range(images, splits[f"{args.role}_members"])
    seed = derived_seed(args.seed, "train", args.role)
    if args.snapshot_steps:
        # The same seed as the role's model, so the snapshots lie on that model's training trajectory.
        from pfami.models.ddpm import train_ddpm
        with atomic_directory(args.output) as folder:
            train_ddpm(members, args.model, args.training, seed, None, None, resolve_device(args.device),
                       args.snapshot_steps, folder)
        print(f"saved {args.role} snapshots at steps {sorted(args.snapshot_steps)} to {args.output}")
        return
    if args.state is None:
        raise ValueError("--state is required to train a model (it makes training resumable)")
    curve = train_model(members, args.model, args.training, seed, args.output, args.state, resolve_device(args.device),
                        args.autoencoder)
    print(f"trained the {args.role} {args.model['family']} model on {len(members)} members for {len(curve)} steps; "
          f"final loss (mean of last 100 steps) {sum(curve[-100:]) / len(curve[-100:]):.4f}")

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--role", choices=["target", "shadow", "reference"], required=True,
                    help="whose model; with model.pretrained the target is adopted, not trained")
parser.add_argument("--model", type=json_value, required=True, help="the experiment's model section (JSON)")
parser.add_argument("--training", type=json_value, required=True, help="the experiment's training section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--output", required=True, help="model folder to write")
parser.add_argument("--state", help="resumable training state file (required unless --snapshot-steps)")
parser.add_argument("--snapshot-steps", type=json_value, default=None,
                    help="JSON list of steps: save step_{k}/ model folders under --output and stop after the last")
parser.add_argument("--autoencoder", default=None,
                    help="model.family ldm: the experiment's trained autoencoder folder (shared by every role)")
parser.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="where preprocessed images are cached")

if __name__ == "__main__":
    run(main, parser)
