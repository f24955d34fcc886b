"""Image generation from a trained diffusion model with the DDPM, DDIM or PNDM sampler, and from a
VAE through its N(0, I) prior.

Each sampler is the diffusers scheduler of that name built ``from_config`` of the model's saved
(training) scheduler config, so it shares its beta schedule; the loop that calls the U-Net is ours
(``PNDMPipeline`` is deprecated). Samples are a sanity check that a model learnt the data, not an
input to the attacks. A latent diffusion model samples latents the same way and decodes them with
its autoencoder (``decoder``).

torch and diffusers are imported inside the functions: the settings (``DEFAULT_SAMPLING``,
``sampling_settings``) are read by the results table too, which should not load them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Sampler name -> the diffusers scheduler class that implements it.
SAMPLERS = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "pndm": "PNDMScheduler"}
# A step of the default 16 px U-Net on 16 images took about 0.16 s on a shared CPU core, so DDPM's
# full 1000-step chain (about 160 s per model) would cost more than training; it runs 100 strided
# steps instead (``set_timesteps``). DDIM and PNDM need about 50 for a clean image.
DEFAULT_SAMPLING = {"samplers": ["ddpm", "ddim", "pndm"], "images": 16,
                    "inference_steps": {"ddpm": 100, "ddim": 50, "pndm": 50}}


def sampling_settings(section: dict | None) -> dict:
    """An experiment's ``sampling`` section with every missing key taken from ``DEFAULT_SAMPLING``."""
    section = dict(section or {})
    steps = {**DEFAULT_SAMPLING["inference_steps"], **section.get("inference_steps", {})}
    return {**DEFAULT_SAMPLING, **section, "inference_steps": steps}


def make_sampler(training_scheduler_config, sampler: str):
    """The scheduler ``sampler`` names, with the training scheduler's betas and timestep count."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampling.samplers: unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")
    import diffusers

    return getattr(diffusers, SAMPLERS[sampler]).from_config(training_scheduler_config)


def sample_images(unet, training_scheduler_config, sampler: str, inference_steps: int, count: int, seed: int,
                  device: torch.device, decoder: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """``count`` images [count, C, S, S] in [-1, 1] generated in ``inference_steps`` sampler steps.

    ``decoder`` turns the U-Net's samples into images (an LDM's autoencoder); without it the
    samples are the images.

    The starting noise depends only on ``seed`` (not on the sampler), so the rows of a grid start
    from the same draws; DDIM runs deterministically (eta = 0)."""
    import torch

    scheduler = make_sampler(training_scheduler_config, sampler)
    scheduler.set_timesteps(inference_steps)
    generator = torch.Generator().manual_seed(seed)
    config = unet.config
    shape = (count, config.in_channels, config.sample_size, config.sample_size)
    sample = (torch.randn(shape, generator=generator) * scheduler.init_noise_sigma).to(device)
    # Only the DDPM step adds fresh noise; it draws it from the same seeded generator.
    step_arguments = {"generator": generator} if sampler == "ddpm" else {}
    with torch.inference_mode():
        for timestep in scheduler.timesteps:
            model_input = scheduler.scale_model_input(sample, timestep)
            predicted_noise = unet(model_input, timestep).sample
            sample = scheduler.step(predicted_noise, timestep, sample, **step_arguments).prev_sample
        images = sample if decoder is None else decoder(sample)
    return images.clamp(-1.0, 1.0).float().cpu().numpy()


def sample_vae_images(vae, count: int, seed: int, device: torch.device) -> np.ndarray:
    """``count`` images [count, C, S, S] in [-1, 1]: latents drawn from the N(0, I) prior (seeded) and decoded."""
    import torch

    with torch.inference_mode():
        latent = torch.randn((count, vae.latent_dim), generator=torch.Generator().manual_seed(seed)).to(device)
        unit_images = vae.decode(latent)  # the decoder ends in a sigmoid: [0, 1]
        return (unit_images * 2.0 - 1.0).float().cpu().numpy()


def sample_grid_rows(model_dir, settings: dict, seed: int, device: torch.device) -> dict[str, np.ndarray]:
    """The rows of a model folder's sample grid, {row label: images}: a diffusion model (DDPM or
    LDM) one row per sampler in ``settings`` (from ``sampling_settings``), a VAE one row decoded
    from prior draws. Each family's module is imported only for its own folders (diffusers takes
    seconds to import)."""
    from pfami.models import folder_family

    family = folder_family(model_dir)
    if family == "vae":
        from pfami.models.vae import load_vae

        return {"VAE\nN(0, I) prior": sample_vae_images(load_vae(model_dir, device), settings["images"], seed, device)}
    decoder = None
    if family == "ldm":
        from pfami.models.ldm import latent_decoder, load_ldm

        unet, scheduler, autoencoder = load_ldm(model_dir, device)
        decoder = latent_decoder(autoencoder)  # sample latents, then decode them
    else:
        from pfami.models.ddpm import load_ddpm

        unet, scheduler = load_ddpm(model_dir, device)
    rows = {}
    for sampler in settings["samplers"]:
        steps = settings["inference_steps"][sampler]
        rows[f"{sampler.upper()}\n{steps} steps"] = sample_images(unet, scheduler.config, sampler, steps,
                                                                 settings["images"], seed, device, decoder)
    return rows
