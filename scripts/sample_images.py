"""Generate images from one model and save them as a grid: a diffusion model, a row per sampler; a VAE,
one row decoded from latents drawn from its N(0, I) prior."""

import argparse

import torch

from pfami.cli import json_value, run
from pfami.likelihood import resolve_device
from pfami.models import folder_family
from pfami.plots import plot_sample_grid
from pfami.sampling import sample_images, sample_vae_images, sampling_settings


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    settings = sampling_settings(args.sampling)
    # Each family's module is imported only for its own folders (diffusers takes seconds to import).
    family = folder_family(args.model_dir)
    if family == "vae":
        from pfami.models.vae import load_vae

        rows = {"VAE\nN(0, I) prior": sample_vae_images(load_vae(args.model_dir, device), settings["images"],
                                                         args.seed, device)}
        plot_sample_grid(rows, args.title, args.output)
        print(f"{settings['images']} VAE images decoded from prior draws written to {args.output}")
        return
    decoder = None
    if family == "ldm":
        from pfami.models.ldm import latent_decoder, load_ldm

        unet, scheduler, autoencoder = load_ldm(args.model_dir, device)
        decoder = latent_decoder(autoencoder)  # sample latents, then decode them
    else:
        from pfami.models.ddpm import load_ddpm

        unet, scheduler = load_ddpm(args.model_dir, device)
    rows = {}
    for sampler in settings["samplers"]:
        steps = settings["inference_steps"][sampler]
        rows[f"{sampler.upper()}\n{steps} steps"] = sample_images(unet, scheduler.config, sampler, steps,
                                                                 settings["images"], args.seed, device, decoder)
    plot_sample_grid(rows, args.title, args.output)
    print(f"{len(rows)} samplers x {settings['images']} images written to {args.output}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model-dir", required=True)
parser.add_argument("--sampling", type=json_value, default={}, help="the experiment's sampling section (JSON)")
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--title", default="samples")
parser.add_argument("--device", default="auto")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--output", required=True, help="PNG to write")

if __name__ == "__main__":
    run(main, parser)
