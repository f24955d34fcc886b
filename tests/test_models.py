import json

import numpy as np
import pytest
import torch

from pfami.models.ddpm import load_ddpm, train_ddpm
from pfami.models.folders import CheckpointError
from tests.conftest import killed_after_checkpoint

MODEL = {"family": "ddpm", "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
         "train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}
TRAINING = {"steps": 10, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2, "checkpoint_every": 4}
IMAGES = np.random.default_rng(0).uniform(-1, 1, (16, 1, 8, 8)).astype(np.float32)


def _weights(folder):
    unet, _ = load_ddpm(folder, torch.device("cpu"))
    return {name: tensor.clone() for name, tensor in unet.state_dict().items()}


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    curve = train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "model", tmp_path / "state.pt", torch.device("cpu"))
    assert len(curve) == 10 and not (tmp_path / "state.pt").exists()
    assert json.loads((tmp_path / "model" / "training.json").read_text())["family"] == "ddpm"
    first, _ = load_ddpm(tmp_path / "model", torch.device("cpu"))
    second, scheduler = load_ddpm(tmp_path / "model", torch.device("cpu"))
    x, t = torch.from_numpy(IMAGES[:4]), torch.tensor([0, 10, 500, 999])
    with torch.inference_mode():
        assert torch.equal(first(x, t).sample, second(x, t).sample)
    assert scheduler.config.num_train_timesteps == 1000


def test_interrupted_training_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "straight", tmp_path / "unused.pt", torch.device("cpu"))

    with killed_after_checkpoint(monkeypatch, 8):
        train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "resumed", tmp_path / "state.pt", torch.device("cpu"))
    assert not (tmp_path / "resumed").exists() and (tmp_path / "state.pt").exists()

    steps_run = []
    original_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: steps_run.append(1) or original_step(self, *a, **k))
    curve = train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "resumed", tmp_path / "state.pt", torch.device("cpu"))
    assert len(steps_run) == 2 and len(curve) == 10  # only steps 9 and 10 were run again
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)


def test_state_saved_with_other_settings_is_not_resumed(tmp_path):
    state = tmp_path / "state.pt"
    torch.save({"settings_digest": "something else", "step": 9}, state)
    curve = train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "model", state, torch.device("cpu"))
    assert len(curve) == 10


def test_missing_or_truncated_checkpoints_give_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not a DDPM folder"):
        load_ddpm(tmp_path, torch.device("cpu"))
    train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "model", tmp_path / "state.pt", torch.device("cpu"))
    weights = next((tmp_path / "model" / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot load the model"):
        load_ddpm(tmp_path / "model", torch.device("cpu"))
