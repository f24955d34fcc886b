"""Estimate the loss tensor L[record, timestep, strength] of one model on one role's records."""

import argparse

import numpy as np
import torch

from pfami.cli import json_value, run
from pfami.data import load_dataset, load_splits, records_of
from pfami.io import save_arrays
from pfami.likelihood import compile_noise_predictor, diffusion_losses, resolve_device, unet_noise_predictor
from pfami.models.ddpm import load_ddpm

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images = load_dataset(args.data)
    record_ids, records, is_member = records_of(images, load_splits(args.splits_file, images), args.records,
                                                args.attacked_per_part)
    unet, scheduler = load_ddpm(args.model_dir, device)
    estimation, perturbation = args.estimation, args.perturbation
    precision = estimation.get("precision", "fp32")
    compile_model = estimation.get("compile", False)
    eps_model = unet_noise_predictor(unet)
    losses = diffusion_losses(
        compile_noise_predictor(eps_model) if compile_model else eps_model, scheduler.alphas_cumprod, records, record_ids, estimation["timesteps"],
        perturbation["mechanism"], perturbation["strengths"], args.seed, estimation.get("common_noise", True),
        args.model_name, estimation["batch_size"], device, PRECISIONS[precision] if device.type == "cuda" else None,
        static_batch=compile_model)
    save_arrays(args.output, losses=losses, record_ids=record_ids, is_member=is_member,
                timesteps=np.array(estimation["timesteps"]), strengths=np.array(perturbation["strengths"]))
    print(f"{args.model_name} model on {len(records)} {args.records} records: loss tensor {losses.shape}, "
          f"mean own loss {losses[:, :, 0].mean():.4f}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--records", choices=["target", "shadow", "reference"], required=True,
                    help="whose members and hold-outs to evaluate")
parser.add_argument("--attacked-per-part", type=json_value, default=None)
parser.add_argument("--model-dir", required=True)
parser.add_argument("--model-name", required=True, help="the model's role; keys the noise when it is not shared")
parser.add_argument("--estimation", type=json_value, required=True, help="the experiment's estimation section (JSON)")
parser.add_argument("--perturbation", type=json_value, required=True, help="the perturbation section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--output", required=True, help="loss tensor file to write (.npz)")

if __name__ == "__main__":
    run(main, parser)
