import numpy as np
import pytest
import torch

from pfami.likelihood import diffusion_losses, noise_for_block, record_noise, resolve_device
from pfami.models.ddpm import build_scheduler
from pfami.perturb import make_neighbours

ALPHAS = build_scheduler(1000, 1e-4, 0.02).alphas_cumprod
TIMESTEPS = [0, 300, 700]
STRENGTHS = [0.9, 0.75]


def _images(count=5, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, 1, size, size)).astype(np.float32)


def identity_model(noisy, timesteps):
    """Predicts the noisy input itself, so the loss has a closed form."""
    return noisy


def test_loss_matches_a_hand_computation_with_shared_noise():
    images, record_ids = _images(), [11, 12, 13, 14, 15]
    losses = diffusion_losses(identity_model, ALPHAS, images, record_ids, TIMESTEPS, "crop", STRENGTHS, seed=3,
                              show_progress=False)
    assert losses.shape == (5, 3, 3)
    neighbours = make_neighbours(torch.from_numpy(images), "crop", STRENGTHS)
    for row, record_id in enumerate(record_ids):
        noise = record_noise(3, record_id, (3, 1, 8, 8))
        for m, t in enumerate(TIMESTEPS):
            abar = ALPHAS[t].double()
            for n in range(3):
                x = neighbours[row, n].double()
                expected = ((abar.sqrt() * x + (1 - abar).sqrt() * noise[m] - noise[m]) ** 2).mean()
                assert losses[row, m, n] == pytest.approx(float(expected), rel=1e-4)


@pytest.mark.parametrize("batch_size", [1, 7, 33, 1000])
def test_batching_does_not_change_the_losses(batch_size):
    images = _images()
    reference = diffusion_losses(identity_model, ALPHAS, images, range(5), TIMESTEPS, "crop", STRENGTHS, seed=1,
                                 batch_size=9, show_progress=False)
    batched = diffusion_losses(identity_model, ALPHAS, images, range(5), TIMESTEPS, "crop", STRENGTHS, seed=1,
                               batch_size=batch_size, show_progress=False)
    np.testing.assert_allclose(batched, reference, rtol=1e-6)


def test_common_noise_is_shared_across_neighbours_and_models_but_not_records():
    noise = noise_for_block([4, 5], 3, 2, (1, 8, 8), seed=0, common_noise=True, model_name="target")
    assert noise.shape == (2, 3, 3, 1, 8, 8)
    assert torch.equal(noise[:, 0], noise[:, 2])
    assert torch.equal(noise, noise_for_block([4, 5], 3, 2, (1, 8, 8), 0, True, "reference"))
    assert not torch.equal(noise[0], noise[1])
    assert not torch.equal(noise[0, 0, 0], noise[0, 0, 1])  # timesteps draw separately


def test_independent_noise_differs_per_neighbour_and_model():
    target = noise_for_block([4], 3, 2, (1, 8, 8), seed=0, common_noise=False, model_name="target")
    reference = noise_for_block([4], 3, 2, (1, 8, 8), seed=0, common_noise=False, model_name="reference")
    assert not torch.equal(target[:, 0], target[:, 1])
    assert not torch.equal(target, reference)
    assert torch.equal(target, noise_for_block([4], 3, 2, (1, 8, 8), 0, False, "target"))


def test_device_selection():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_autocast_path_runs_and_stays_close_to_fp32():
    """The reduced-precision path (CUDA's bf16) exercised on the CPU with bf16 autocast."""
    images = _images(3)
    layer = torch.nn.Conv2d(1, 1, 3, padding=1)
    model = lambda noisy, timesteps: layer(noisy)  # noqa: E731
    full = diffusion_losses(model, ALPHAS, images, range(3), TIMESTEPS, "crop", STRENGTHS, seed=0, show_progress=False)
    reduced = diffusion_losses(model, ALPHAS, images, range(3), TIMESTEPS, "crop", STRENGTHS, seed=0,
                               autocast_dtype=torch.bfloat16, show_progress=False)
    assert reduced.dtype == np.float32
    np.testing.assert_allclose(reduced, full, rtol=0.05)
