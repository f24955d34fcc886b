import numpy as np
import pytest
import torch

from pfami.likelihood import (diffusion_losses, noise_for_block, record_noise, reference_loop_losses,
                              resolve_device)
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


def _small_conv_model():
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(1, 1, 3, padding=1)
    return lambda noisy, timesteps: layer(noisy) * (1 + timesteps.float().view(-1, 1, 1, 1) / 1000)


@pytest.mark.parametrize("batch_size", [1, 5, 18, 40, 10_000])
@pytest.mark.parametrize("common_noise", [True, False])
def test_engine_equals_the_authors_style_loop_on_the_same_noise(batch_size, common_noise):
    """7 records x 9 evaluations: every batch size here but the largest leaves a partial last batch."""
    images, record_ids, model = _images(7), [3, 1, 4, 1_000_000, 5, 9, 2], _small_conv_model()
    engine = diffusion_losses(model, ALPHAS, images, record_ids, TIMESTEPS, "crop", STRENGTHS, seed=5,
                              common_noise=common_noise, model_name="target", batch_size=batch_size,
                              show_progress=False)
    noise = noise_for_block(record_ids, len(TIMESTEPS), len(STRENGTHS), (1, 8, 8), 5, common_noise, "target")
    loop = reference_loop_losses(model, ALPHAS, images, TIMESTEPS, "crop", STRENGTHS, noise=noise,
                                 records_per_batch=3)
    np.testing.assert_allclose(engine, loop, rtol=1e-5, atol=1e-6)
    assert engine.std() > 0.01  # the comparison is not between two constant tensors


def test_authors_style_loop_draws_independent_noise_without_given_noise():
    images, model = _images(4), _small_conv_model()
    first = reference_loop_losses(model, ALPHAS, images, TIMESTEPS, "crop", STRENGTHS,
                                  generator=torch.Generator().manual_seed(0))
    again = reference_loop_losses(model, ALPHAS, images, TIMESTEPS, "crop", STRENGTHS,
                                  generator=torch.Generator().manual_seed(0))
    other = reference_loop_losses(model, ALPHAS, images, TIMESTEPS, "crop", STRENGTHS,
                                  generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_common_noise_gives_every_model_identical_inputs():
    """Two models fed by the engine see bit-identical noisy inputs for every (record, neighbour, t)."""
    seen = {}

    def recorder(name):
        def model(noisy, timesteps):
            seen.setdefault(name, []).append(noisy.clone())
            return torch.zeros_like(noisy)
        return model

    images = _images(4)
    for name in ("target", "reference"):
        diffusion_losses(recorder(name), ALPHAS, images, range(4), TIMESTEPS, "crop", STRENGTHS, seed=2,
                         model_name=name, batch_size=10, show_progress=False)
    assert torch.equal(torch.cat(seen["target"]), torch.cat(seen["reference"]))


class BatchRecorder:
    """An eps model that remembers the largest batch it was given."""

    def __init__(self):
        self.largest = 0
        self.calls = 0

    def __call__(self, noisy, timesteps):
        self.largest = max(self.largest, len(noisy))
        self.calls += 1
        assert len(timesteps) == len(noisy)
        return torch.zeros_like(noisy)


@pytest.mark.parametrize("record_count", [1, 13, 200])
def test_forward_passes_never_exceed_the_batch_size_whatever_the_record_count(record_count):
    recorder = BatchRecorder()
    images = _images(record_count, size=4)
    diffusion_losses(recorder, ALPHAS, images, range(record_count), TIMESTEPS, "crop", STRENGTHS, seed=0,
                     batch_size=20, show_progress=False)
    evaluations = record_count * len(TIMESTEPS) * (len(STRENGTHS) + 1)
    assert recorder.largest <= 20
    assert recorder.calls >= evaluations / 20


def test_blocks_of_records_stay_bounded_whatever_the_record_count(monkeypatch):
    """Neighbours and noise are made per block; a block never holds more than batch_size evaluations."""
    import pfami.likelihood as likelihood

    block_sizes = []
    original = likelihood.noise_for_block

    def recording_noise_for_block(record_ids, *args, **kwargs):
        block_sizes.append(len(record_ids))
        return original(record_ids, *args, **kwargs)

    monkeypatch.setattr(likelihood, "noise_for_block", recording_noise_for_block)
    images = _images(400, size=4)
    diffusion_losses(BatchRecorder(), ALPHAS, images, range(400), TIMESTEPS, "crop", STRENGTHS, seed=0,
                     batch_size=27, show_progress=False)
    assert sum(block_sizes) == 400
    assert max(block_sizes) * len(TIMESTEPS) * (len(STRENGTHS) + 1) <= 27


def test_static_batch_pads_every_pass_to_one_shape_without_changing_the_losses():
    sizes = {False: set(), True: set()}

    def recording_model(static_batch):
        def model(noisy, timesteps):
            sizes[static_batch].add(len(noisy))
            return noisy * 0.5 + timesteps.float().view(-1, 1, 1, 1) / 1000
        return model

    images = _images(5)
    losses = {static_batch: diffusion_losses(recording_model(static_batch), ALPHAS, images, range(5), TIMESTEPS,
                                             "crop", STRENGTHS, seed=1, batch_size=20, static_batch=static_batch,
                                             show_progress=False)
              for static_batch in (False, True)}
    np.testing.assert_array_equal(losses[True], losses[False])
    assert sizes[True] == {20}
    assert sizes[False] == {18, 9}  # blocks of 2 records x 9 evaluations; the last block holds one record
