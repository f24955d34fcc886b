"""Generate images from an experiment's models and save one grid per model: a diffusion model, a row
per sampler; a VAE, one row decoded from latents drawn from its N(0, I) prior.

All of an experiment's models in one process: importing torch and diffusers costs more than
sampling these small models."""

import argparse
from pathlib import Path

import torch

from pfami.cli import json_value, run
from pfami.likelihood import resolve_device
from pfami.plots import plot_sample_grid
from pfami.sampling import sample_grid_rows, sampling_settings


def main(args: argparse.Namespace) -> None:
    if len(args.model_dirs) != len(args.outputs):
        raise ValueError(f"--model-dirs ({len(args.model_dirs)}) and --outputs ({len(args.outputs)}) must pair up")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = sampling_settings(args.sampling)
    for model_dir, output in zip(args.model_dirs, args.outputs):
        rows = sample_grid_rows(model_dir, settings, args.seed, device)
        plot_sample_grid(rows, f"{args.experiment}: {Path(model_dir).name} model samples", output)
        print(f"{len(rows)} row(s) x {settings['images']} images of {model_dir} written to {output}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model-dirs", nargs="+", required=True, help="model folders, named by role")
parser.add_argument("--sampling", type=json_value, default={}, help="the experiment's sampling section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--experiment", required=True, help="named in the figure titles")
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--outputs", nargs="+", required=True, help="PNGs to write, one per model folder, in order")

if __name__ == "__main__":
    run(main, parser)
