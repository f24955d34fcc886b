import numpy as np
import pytest
import torch

from pfami.models.ddpm import build_scheduler, build_unet
from pfami.plots import plot_sample_grid
from pfami.models.vae import build_vae
from pfami.sampling import SAMPLERS, make_sampler, sample_images, sample_vae_images, sampling_settings

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return build_unet(8, 1, [8, 16], 1, []).eval()


TRAINING_SCHEDULER = build_scheduler(1000, 1e-4, 0.02)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_keeps_the_training_betas_and_generates_reproducibly(unet, sampler):
    scheduler = make_sampler(TRAINING_SCHEDULER.config, sampler)
    assert type(scheduler).__name__.lower().startswith(sampler)
    assert torch.allclose(scheduler.alphas_cumprod, TRAINING_SCHEDULER.alphas_cumprod)
    first = sample_images(unet, TRAINING_SCHEDULER.config, sampler, 5, 3, seed=1, device=CPU)
    assert first.shape == (3, 1, 8, 8) and np.isfinite(first).all() and np.abs(first).max() <= 1
    np.testing.assert_array_equal(first, sample_images(unet, TRAINING_SCHEDULER.config, sampler, 5, 3, 1, CPU))
    assert not np.array_equal(first, sample_images(unet, TRAINING_SCHEDULER.config, sampler, 5, 3, 2, CPU))


def test_samplers_differ_from_one_another(unet):
    samples = {name: sample_images(unet, TRAINING_SCHEDULER.config, name, 5, 2, 0, CPU) for name in SAMPLERS}
    assert not np.allclose(samples["ddpm"], samples["ddim"]) and not np.allclose(samples["ddim"], samples["pndm"])


def test_unknown_sampler_and_partial_settings():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_sampler(TRAINING_SCHEDULER.config, "euler")
    settings = sampling_settings({"inference_steps": {"ddim": 7}, "images": 4})
    assert settings["inference_steps"] == {"ddpm": 100, "ddim": 7, "pndm": 50}
    assert settings["images"] == 4 and settings["samplers"] == ["ddpm", "ddim", "pndm"]


def test_sample_grid_is_a_png(tmp_path):
    rows = {"DDPM": np.zeros((3, 1, 8, 8)), "DDIM": np.ones((3, 1, 8, 8))}
    plot_sample_grid(rows, "grid", tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_vae_samples_are_decoded_prior_draws_reproducible_by_seed():
    torch.manual_seed(0)
    vae = build_vae(8, 1, {"block_out_channels": [4, 8], "latent_dim": 3}).eval()
    first = sample_vae_images(vae, 5, seed=1, device=CPU)
    latent = torch.randn((5, 3), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        np.testing.assert_allclose(first, vae.decode(latent).numpy() * 2 - 1, atol=1e-6)
    assert first.shape == (5, 1, 8, 8) and np.abs(first).max() <= 1
    np.testing.assert_array_equal(first, sample_vae_images(vae, 5, 1, CPU))
    assert not np.array_equal(first, sample_vae_images(vae, 5, 2, CPU))
