"""Paper-scale training options: EMA weights (saved as the model, resumable) and mixed precision."""

import numpy as np
import torch

from pfami.models.ddpm import build_unet, load_ddpm, train_ddpm
from tests.conftest import killed_after_checkpoint

MODEL = {"family": "ddpm", "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
         "train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}
TRAINING = {"steps": 10, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2, "checkpoint_every": 4}
IMAGES = np.random.default_rng(0).uniform(-1, 1, (16, 1, 8, 8)).astype(np.float32)
CPU = torch.device("cpu")


def _weights(folder):
    unet, _ = load_ddpm(folder, CPU)
    return unet.state_dict()


def test_one_step_ema_is_the_ramped_average_of_initial_and_trained_weights(tmp_path):
    one_step = {**TRAINING, "steps": 1, "warmup_steps": 0}
    train_ddpm(IMAGES, MODEL, one_step, 0, tmp_path / "plain", tmp_path / "plain.pt", CPU)
    train_ddpm(IMAGES, MODEL, {**one_step, "ema_decay": 0.999}, 0, tmp_path / "ema", tmp_path / "ema.pt", CPU)
    torch.manual_seed(0)  # train_ddpm seeds the initial weights this way
    initial = build_unet(8, 1, MODEL["block_out_channels"], 1, []).state_dict()
    trained, averaged = _weights(tmp_path / "plain"), _weights(tmp_path / "ema")
    step_decay = min(0.999, 1 / 10)  # the ramp (1 + step) / (10 + step) at step 0 is below the decay
    for name in trained:
        expected = step_decay * initial[name] + (1 - step_decay) * trained[name]
        assert torch.allclose(averaged[name], expected, atol=1e-6), name
    assert any(not torch.equal(averaged[name], trained[name]) for name in trained)


def test_interrupted_ema_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    training = {**TRAINING, "ema_decay": 0.9}
    train_ddpm(IMAGES, MODEL, training, 0, tmp_path / "straight", tmp_path / "unused.pt", CPU)
    with killed_after_checkpoint(monkeypatch, 8):
        train_ddpm(IMAGES, MODEL, training, 0, tmp_path / "resumed", tmp_path / "state.pt", CPU)
    assert torch.load(tmp_path / "state.pt", weights_only=True)["ema"] is not None
    train_ddpm(IMAGES, MODEL, training, 0, tmp_path / "resumed", tmp_path / "state.pt", CPU)
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def test_mixed_precision_is_ignored_on_cpu(tmp_path):
    plain = train_ddpm(IMAGES, MODEL, {**TRAINING, "steps": 3}, 0, tmp_path / "a", tmp_path / "a.pt", CPU)
    mixed = train_ddpm(IMAGES, MODEL, {**TRAINING, "steps": 3, "precision": "fp16"}, 0, tmp_path / "b",
                       tmp_path / "b.pt", CPU)
    assert plain == mixed
