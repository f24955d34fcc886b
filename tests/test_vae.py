import json

import numpy as np
import pytest
import torch

from pfami.likelihood import model_losses, record_noise, vae_losses
from pfami.models import folder_family, train_model
from pfami.models.ddpm import load_ddpm
from pfami.models.folders import CheckpointError
from pfami.models.vae import ConvVAE, load_vae, train_vae
from pfami.perturb import make_neighbours
from tests.conftest import killed_after_checkpoint

MODEL = {"family": "vae", "block_out_channels": [4, 8], "latent_dim": 3}
TRAINING = {"steps": 10, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2, "checkpoint_every": 4}
IMAGES = np.random.default_rng(0).uniform(-1, 1, (16, 1, 8, 8)).astype(np.float32)
CPU = torch.device("cpu")
STRENGTHS = [0.9, 0.75]


def _train(tmp_path, name="model"):
    return train_vae(IMAGES, MODEL, TRAINING, 0, tmp_path / name, tmp_path / f"{name}.pt", CPU)


def _weights(folder):
    return {name: tensor.clone() for name, tensor in load_vae(folder, CPU).state_dict().items()}


def test_negative_elbo_is_reconstruction_plus_kl_in_unit_pixels():
    torch.manual_seed(0)
    vae = ConvVAE(8, 1, [4, 8], 3).eval()
    images, noise = torch.from_numpy(IMAGES[:2]), torch.randn(2, 3)
    with torch.no_grad():
        mean, log_variance = vae.encode((images + 1) / 2)
        decoded = vae.decode(mean + (0.5 * log_variance).exp() * noise)
        expected = ((decoded - (images + 1) / 2) ** 2).sum(dim=(1, 2, 3)) + 0.5 * (
            mean**2 + log_variance.exp() - 1 - log_variance).sum(dim=1)
        assert torch.allclose(vae.negative_elbo(images, noise), expected)
    assert 0 <= float(decoded.min()) and float(decoded.max()) <= 1


def test_training_lowers_the_loss_and_the_save_load_round_trip_is_exact(tmp_path):
    curve = train_model(IMAGES, {**MODEL}, {**TRAINING, "steps": 60, "learning_rate": 5e-3}, 0, tmp_path / "model",
                        tmp_path / "state.pt", CPU)
    assert np.mean(curve[-10:]) < np.mean(curve[:10])
    assert not (tmp_path / "state.pt").exists()
    assert json.loads((tmp_path / "model" / "training.json").read_text())["family"] == "vae"
    assert folder_family(tmp_path / "model") == "vae"
    first, second = load_vae(tmp_path / "model", CPU), load_vae(tmp_path / "model", CPU)
    noise = torch.randn(4, 3)
    with torch.inference_mode():
        assert torch.equal(first.negative_elbo(torch.from_numpy(IMAGES[:4]), noise),
                           second.negative_elbo(torch.from_numpy(IMAGES[:4]), noise))


def test_interrupted_vae_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    _train(tmp_path, "straight")
    with killed_after_checkpoint(monkeypatch, 8):
        _train(tmp_path, "resumed")
    assert len(_train(tmp_path, "resumed")) == 10
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def test_truncated_missing_or_wrong_family_checkpoints_give_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not a VAE folder"):
        load_vae(tmp_path, CPU)
    _train(tmp_path)
    with pytest.raises(CheckpointError, match="holds a vae model, not a ddpm model"):
        load_ddpm(tmp_path / "model", CPU)
    with pytest.raises(CheckpointError, match="model.family is ddpm"):
        folder_family(tmp_path / "model", expected="ddpm")
    weights = tmp_path / "model" / "vae" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot load the model"):
        load_vae(tmp_path / "model", CPU)


def test_config_of_another_shape_gives_a_clear_error(tmp_path):
    _train(tmp_path)
    config = tmp_path / "model" / "vae" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "latent_dim": 5}))
    with pytest.raises(CheckpointError, match="cannot load the model"):
        load_vae(tmp_path / "model", CPU)


def test_elbo_losses_match_a_hand_computation_with_common_latent_noise():
    torch.manual_seed(1)
    vae = ConvVAE(8, 1, [4, 8], 3).eval()
    images, record_ids = IMAGES[:3], [21, 22, 23]
    losses = vae_losses(vae, images, record_ids, 4, "crop", STRENGTHS, seed=5, batch_size=7, show_progress=False)
    assert losses.shape == (3, 4, 3)
    neighbours = make_neighbours(torch.from_numpy(images), "crop", STRENGTHS)
    with torch.inference_mode():
        for row, record_id in enumerate(record_ids):
            noise = record_noise(5, record_id, (4, 3))  # one draw per k, shared by the record and its neighbours
            for n in range(3):
                expected = vae.negative_elbo(neighbours[row, n].expand(4, -1, -1, -1), noise)
                np.testing.assert_allclose(losses[row, :, n], expected.numpy(), rtol=1e-5)
    # Common noise: a second model sees the same draws, so the same network gives the same tensor.
    again = vae_losses(vae, images, record_ids, 4, "crop", STRENGTHS, seed=5, model_name="reference", batch_size=1000,
                       show_progress=False)
    np.testing.assert_allclose(again, losses, rtol=1e-6)
    independent = vae_losses(vae, images, record_ids, 4, "crop", STRENGTHS, seed=5, common_noise=False,
                             model_name="reference", show_progress=False)
    assert not np.allclose(independent, losses)


def test_model_losses_dispatches_on_the_family(tmp_path):
    _train(tmp_path)
    estimation = {"elbo_draws": 2, "batch_size": 16}
    losses, first_axis = model_losses(tmp_path / "model", "vae", IMAGES[:3], [0, 1, 2], estimation,
                                      {"mechanism": "crop", "strengths": STRENGTHS}, 0, "target", CPU, False)
    assert losses.shape == (3, 2, 3) and np.isfinite(losses).all() and (losses > 0).all()
    assert first_axis.tolist() == [0, 1]
