"""Probability proxies: the per-timestep denoising loss of a record and of its neighbours.

``L[record, m, n] = mean_{C,H,W} (eps_theta(sqrt(abar_t) x~_n + sqrt(1 - abar_t) eps, t) - eps)^2``
for t = timesteps[m] and x~_0 the record itself, x~_1..N its neighbours. A lower loss stands
for a higher probability.

Noise. With ``common_noise=True`` (the default) the noise for a record and a timestep depends
only on (seed, record id, timestep index): the record, each neighbour and every model see the
same draw, so differences between them are not swamped by noise. ``common_noise=False``
reproduces the authors' choice of an independent draw per record, neighbour and model.
Either way the draw does not depend on batching or device.

VAE. The proxy is the one-sample negative ELBO; its K latent draws take the place of the
timestep axis (``vae_losses``), with the same noise rules.

LDM. The same per-timestep loss in the latent space of the model's autoencoder: the record and its
neighbours are perturbed in pixel space, then encoded (``diffusion_losses(..., encoder=...)``), and
the noise has the latent's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from pfami.perturb import MECHANISMS, make_neighbours
from pfami.seeding import stable_key

NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; otherwise the named device."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: {requested!r} was asked for but CUDA is not available; set device: auto or cpu")
    return device


def record_noise(seed: int, record_id: int, shape: tuple[int, ...], stream: Sequence[int] = ()) -> torch.Tensor:
    """Standard normal noise of ``shape`` determined by (seed, record id, stream) alone."""
    draw_seed = np.random.SeedSequence([seed, record_id, *stream]).generate_state(1)[0]
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(draw_seed)))


def noise_for_block(record_ids: Sequence[int], timestep_count: int, neighbour_count: int, image_shape: tuple[int, ...],
                    seed: int, common_noise: bool, model_name: str) -> torch.Tensor:
    """Noise [B, 1 + N, M, C, H, W] for a block of records (a broadcast view in common mode)."""
    if common_noise:
        draws = torch.stack([record_noise(seed, int(rid), (timestep_count, *image_shape)) for rid in record_ids])
        return draws[:, None].expand(-1, neighbour_count + 1, *draws.shape[1:])
    model_key = stable_key(model_name)
    return torch.stack([
        torch.stack([record_noise(seed, int(rid), (timestep_count, *image_shape), (n, model_key))
                     for n in range(neighbour_count + 1)])
        for rid in record_ids
    ])


# (inputs [P, C, H, W], noise [P, ...], draw index [P]) -> loss [P]; a draw is a timestep or an ELBO sample.
InputLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# Images [B, C, S, S] in [-1, 1] -> what the network sees (e.g. an LDM's latents [B, c, s, s]).
Encoder = Callable[[torch.Tensor], torch.Tensor]


# Inference mode over the whole engine, not only the forward pass: every tensor it builds is then an
# inference tensor, so a compiled model sees the same kind of input for padded and unpadded passes
# (a mix makes torch.compile recompile), and data preparation skips autograd bookkeeping.
@torch.inference_mode()
def perturbed_losses(input_loss: InputLoss, images: np.ndarray, record_ids: Sequence[int], draw_count: int,
                     noise_shape: tuple[int, ...], mechanism: str, strengths: Sequence[float], seed: int,
                     common_noise: bool, model_name: str, batch_size: int, show_progress: bool,
                     encoder: Encoder | None = None) -> np.ndarray:
    """L [R, draws, 1 + N]: ``input_loss`` of every record and neighbour at every draw, each with its noise.

    ``encoder`` maps the record and its neighbours (made in pixel space) to the network's input
    space once per block, before they are repeated for every draw.

    Records are processed in blocks whose (1 + N) x draws evaluations fill about ``batch_size``
    network inputs, so memory is bounded by ``batch_size`` whatever the number of records."""
    neighbour_count = len(strengths)
    records_per_block = max(1, batch_size // (draw_count * (neighbour_count + 1)))
    losses = np.empty((len(images), draw_count, neighbour_count + 1), dtype=np.float32)
    starts = range(0, len(images), records_per_block)
    for start in tqdm(starts, desc="losses", disable=not show_progress, mininterval=5.0):
        stop = min(start + records_per_block, len(images))
        block = torch.from_numpy(images[start:stop])
        neighbours = make_neighbours(block, mechanism, strengths)  # [B, 1+N, C, H, W]
        if encoder is not None:
            neighbours = encoder(neighbours.flatten(0, 1)).unflatten(0, neighbours.shape[:2])
        input_shape = neighbours.shape[2:]
        noise = noise_for_block(record_ids[start:stop], draw_count, neighbour_count, noise_shape, seed,
                                common_noise, model_name)  # [B, 1+N, draws, *noise_shape]
        flat_inputs = neighbours[:, :, None].expand(-1, -1, draw_count, *input_shape).reshape(-1, *input_shape)
        flat_noise = noise.reshape(-1, *noise_shape)
        flat_draws = torch.arange(draw_count).repeat((stop - start) * (neighbour_count + 1))
        block_losses = torch.empty(len(flat_inputs))
        for chunk in range(0, len(flat_inputs), batch_size):
            part = slice(chunk, chunk + batch_size)
            block_losses[part] = input_loss(flat_inputs[part], flat_noise[part], flat_draws[part])
        losses[start:stop] = block_losses.view(stop - start, neighbour_count + 1, draw_count).transpose(1, 2).numpy()
    return losses


def diffusion_losses(eps_model: NoisePredictor, alphas_cumprod: torch.Tensor, images: np.ndarray,
                     record_ids: Sequence[int], timesteps: Sequence[int], mechanism: str,
                     strengths: Sequence[float], seed: int, common_noise: bool = True, model_name: str = "",
                     batch_size: int = 1024, device: torch.device | None = None,
                     autocast_dtype: torch.dtype | None = None, show_progress: bool = True,
                     static_batch: bool = False, encoder: Encoder | None = None) -> np.ndarray:
    """The loss tensor L [R, M, 1 + N] of ``images`` [R, C, S, S] and their neighbours.

    ``encoder`` (an LDM's): the loss is computed on the encoded record and neighbours, with noise of
    the encoded shape.

    ``static_batch`` pads every forward pass to exactly ``batch_size`` inputs (the padding's
    outputs are dropped), so a compiled model (:func:`compile_noise_predictor`) sees one shape
    and is compiled once instead of again for each partial batch."""
    device = device or torch.device("cpu")
    alphas = alphas_cumprod.to(torch.float64)[list(timesteps)]
    signal_scale, noise_scale = alphas.sqrt().float(), (1 - alphas).sqrt().float()
    timestep_tensor = torch.as_tensor(list(timesteps), dtype=torch.long)

    def input_loss(inputs: torch.Tensor, noise: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        noisy = signal_scale[draws].view(-1, 1, 1, 1) * inputs + noise_scale[draws].view(-1, 1, 1, 1) * noise
        return _denoising_loss(eps_model, noisy, noise, timestep_tensor[draws], device, autocast_dtype,
                               batch_size if static_batch else None)

    input_shape = images.shape[1:] if encoder is None else tuple(encoder(torch.from_numpy(images[:1])).shape[1:])
    return perturbed_losses(input_loss, images, record_ids, len(timesteps), input_shape, mechanism, strengths,
                            seed, common_noise, model_name, batch_size, show_progress, encoder)


def vae_losses(vae, images: np.ndarray, record_ids: Sequence[int], draw_count: int, mechanism: str,
               strengths: Sequence[float], seed: int, common_noise: bool = True, model_name: str = "",
               batch_size: int = 1024, device: torch.device | None = None,
               show_progress: bool = True) -> np.ndarray:
    """The loss tensor L [R, K, 1 + N]: the one-sample negative ELBO of every record and neighbour,
    drawn K = ``draw_count`` times. With common noise the latent draw k of a record is the same for the
    record, its neighbours and both models (``vae.negative_elbo(images, latent_noise)``)."""
    device = device or torch.device("cpu")

    @torch.inference_mode()
    def input_loss(inputs: torch.Tensor, noise: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        return vae.negative_elbo(inputs.to(device), noise.to(device)).float().cpu()

    return perturbed_losses(input_loss, images, record_ids, draw_count, (vae.latent_dim,), mechanism, strengths,
                            seed, common_noise, model_name, batch_size, show_progress)


@torch.inference_mode()
def _denoising_loss(eps_model: NoisePredictor, noisy: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                    device: torch.device, autocast_dtype: torch.dtype | None,
                    padded_size: int | None = None) -> torch.Tensor:
    count = len(noisy)
    noisy, noise, timesteps = noisy.to(device), noise.to(device), timesteps.to(device)
    if padded_size is not None and count < padded_size:
        # Repeat the last input rather than pad with zeros: same values, nothing degenerate.
        noisy = torch.cat([noisy, noisy[-1:].expand(padded_size - count, *noisy.shape[1:])])
        timesteps = torch.cat([timesteps, timesteps[-1:].expand(padded_size - count)])
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        prediction = eps_model(noisy, timesteps)[:count]
    return (prediction.float() - noise).pow(2).mean(dim=(1, 2, 3)).cpu()


def compile_noise_predictor(eps_model: NoisePredictor) -> NoisePredictor:
    """``torch.compile`` for one fixed batch shape (use with ``static_batch=True``).

    Compiling takes minutes on a CPU, so it pays only for long runs (or on a GPU)."""
    return torch.compile(eps_model, dynamic=False)


@torch.inference_mode()
def reference_loop_losses(eps_model: NoisePredictor, alphas_cumprod: torch.Tensor, images: np.ndarray,
                          timesteps: Sequence[int], mechanism: str, strengths: Sequence[float],
                          noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                          records_per_batch: int = 100) -> np.ndarray:
    """The loss tensor L [R, M, 1 + N] computed the way the authors' code does, as a yardstick.

    One strength and one timestep at a time, ``records_per_batch`` records per forward pass,
    neighbours remade for every pass. ``noise`` [R, 1 + N, M, C, H, W] (e.g. from
    :func:`noise_for_block`) fixes the draws so the result can be compared with
    :func:`diffusion_losses`; without it every pass draws fresh independent noise from
    ``generator``, as the authors do. Kept for tests and benchmarks, not used by the pipeline."""
    timestep_count, neighbour_count = len(timesteps), len(strengths)
    alphas = alphas_cumprod.to(torch.float64)
    losses = np.empty((len(images), timestep_count, neighbour_count + 1), dtype=np.float32)
    perturb = MECHANISMS[mechanism]
    for n in range(neighbour_count + 1):
        for m, timestep in enumerate(timesteps):
            signal_scale = float(alphas[timestep].sqrt())
            noise_scale = float((1 - alphas[timestep]).sqrt())
            for start in range(0, len(images), records_per_batch):
                stop = min(start + records_per_batch, len(images))
                batch = torch.from_numpy(images[start:stop])
                if n > 0:
                    batch = perturb(batch, float(strengths[n - 1])).clamp(-1.0, 1.0)
                draw = noise[start:stop, n, m] if noise is not None else torch.randn(batch.shape, generator=generator)
                noisy = signal_scale * batch + noise_scale * draw
                prediction = eps_model(noisy, torch.full((stop - start,), timestep, dtype=torch.long))
                losses[start:stop, m, n] = (prediction - draw).pow(2).mean(dim=(1, 2, 3)).numpy()
    return losses


def unet_noise_predictor(unet) -> NoisePredictor:
    """Adapt a diffusers UNet2DModel to ``eps_model(noisy, timesteps) -> predicted noise``."""
    return lambda noisy, timesteps: unet(noisy, timesteps).sample


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def model_losses(model_dir, family: str, images: np.ndarray, record_ids: Sequence[int], estimation: dict,
                 perturbation: dict, seed: int, model_name: str, device: torch.device,
                 show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(L [R, M, 1 + N], the M labels of the first axis) of a saved model of ``family``.

    For a diffusion model the labels are the timesteps; for a VAE, the draw indices 0..K-1. An LDM's
    loss is the latent U-Net's, on the encoded record and encoded neighbours."""
    # Each family's module is imported in its branch: diffusers takes seconds to import and a VAE needs none of it.
    common_noise, batch_size = estimation.get("common_noise", True), estimation["batch_size"]
    mechanism, strengths = perturbation["mechanism"], perturbation["strengths"]
    if family == "vae":
        from pfami.models.vae import load_vae

        draws = estimation["elbo_draws"]
        losses = vae_losses(load_vae(model_dir, device), images, record_ids, draws, mechanism, strengths, seed,
                            common_noise, model_name, batch_size, device, show_progress)
        return losses, np.arange(draws)
    encoder = None
    if family == "ldm":
        from pfami.models.ldm import encode_latents, load_ldm

        unet, scheduler, autoencoder = load_ldm(model_dir, device)
        encoder = lambda images: encode_latents(autoencoder, images)  # noqa: E731
    else:
        from pfami.models.ddpm import load_ddpm

        unet, scheduler = load_ddpm(model_dir, device)
    autocast = PRECISIONS[estimation.get("precision", "fp32")] if device.type == "cuda" else None
    compiled = estimation.get("compile", False)
    eps_model = unet_noise_predictor(unet)
    losses = diffusion_losses(compile_noise_predictor(eps_model) if compiled else eps_model, scheduler.alphas_cumprod,
                              images, record_ids, estimation["timesteps"], mechanism, strengths, seed, common_noise,
                              model_name, batch_size, device, autocast, show_progress, static_batch=compiled,
                              encoder=encoder)
    return losses, np.array(estimation["timesteps"])
