"""The latent diffusion family: shared autoencoder, latent U-Net, their folders and the latent loss."""

import json

import numpy as np
import pytest
import torch
import yaml

from pfami.config import ConfigError, check_config
from pfami.data import DataError, records_outside_splits
from pfami.likelihood import diffusion_losses, model_losses, record_noise
from pfami.models import folder_family, train_model
from pfami.models.ddpm import load_ddpm, train_ddpm
from pfami.models.ldm import (encode_latents, encode_records, latent_decoder, load_autoencoder, load_ldm,
                              train_autoencoder, train_ldm)
from pfami.models.folders import CheckpointError
from pfami.perturb import make_neighbours
from pfami.sampling import sample_images
from tests.conftest import PROJECT, TINY_CONFIG

CPU = torch.device("cpu")
IMAGES = np.random.default_rng(0).uniform(-1, 1, (16, 1, 8, 8)).astype(np.float32)
TRAINING = {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 1, "checkpoint_every": 4}
AUTOENCODER = {"block_out_channels": [4, 8], "latent_channels": 2, "training_records": 16, "kl_weight": 1e-6,
               "training": TRAINING}
MODEL = {"family": "ldm", "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
         "train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "autoencoder": AUTOENCODER}
ESTIMATION = {"timesteps": [0, 300], "batch_size": 16}
PERTURBATION = {"mechanism": "crop", "strengths": [0.9, 0.75]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A shared autoencoder and one role's LDM trained on it (8 px images, 2 x 4 x 4 latents)."""
    folder = tmp_path_factory.mktemp("ldm")
    train_autoencoder(IMAGES, AUTOENCODER, 0, folder / "autoencoder", folder / "autoencoder.pt", CPU)
    curve = train_model(IMAGES[:8], MODEL, TRAINING, 1, folder / "target", folder / "target.pt", CPU,
                        folder / "autoencoder")
    return folder, curve


def test_each_role_trains_its_own_unet_on_the_latents_of_the_shared_autoencoder(trained):
    folder, curve = trained
    assert len(curve) == 6 and not (folder / "target.pt").exists() and not (folder / "autoencoder.pt").exists()
    assert json.loads((folder / "autoencoder" / "training.json").read_text())["family"] == "autoencoder"
    record = json.loads((folder / "target" / "training.json").read_text())
    assert record["family"] == "ldm" and folder_family(folder / "target") == "ldm"
    unet, scheduler, autoencoder = load_ldm(folder / "target", CPU)
    assert unet.config.in_channels == 2 and unet.config.sample_size == 4  # the latent, not the image
    assert scheduler.config.clip_sample is False  # latents are not in [-1, 1]
    # the folder holds a byte copy of the shared autoencoder, so it stays usable on its own
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        assert (folder / "target" / "autoencoder" / name).read_bytes() == \
            (folder / "autoencoder" / "autoencoder" / name).read_bytes()
    # the scaling factor makes the training records' latents unit-variance, the scale the noise schedule assumes
    assert abs(encode_records(autoencoder, IMAGES).std() - 1.0) < 1e-3


def test_save_load_round_trip_gives_identical_outputs(trained):
    folder, _ = trained
    first_unet, _, first_autoencoder = load_ldm(folder / "target", CPU)
    second_unet, _, second_autoencoder = load_ldm(folder / "target", CPU)
    images, timesteps = torch.from_numpy(IMAGES[:3]), torch.tensor([0, 400, 999])
    latents = encode_latents(first_autoencoder, images)
    assert torch.equal(latents, encode_latents(second_autoencoder, images))
    with torch.inference_mode():
        assert torch.equal(first_unet(latents, timesteps).sample, second_unet(latents, timesteps).sample)
        assert torch.equal(latent_decoder(first_autoencoder)(latents), latent_decoder(second_autoencoder)(latents))


def test_truncated_checkpoints_and_missing_parts_give_a_clear_error(trained, tmp_path):
    import shutil

    folder, _ = trained
    with pytest.raises(CheckpointError, match="not an LDM folder"):
        load_ldm(tmp_path, CPU)
    for part in ("unet", "autoencoder"):
        broken = tmp_path / f"broken_{part}"
        shutil.copytree(folder / "target", broken)
        weights = next((broken / part).glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
        with pytest.raises(CheckpointError, match=f"{broken}: cannot load the model"):
            load_ldm(broken, CPU)
    with pytest.raises(CheckpointError, match="no autoencoder"):
        load_autoencoder(tmp_path, CPU)


def test_a_folder_of_another_family_is_refused(trained, tmp_path):
    folder, _ = trained
    with pytest.raises(CheckpointError, match="holds a ldm model but the experiment's model.family is ddpm"):
        folder_family(folder / "target", "ddpm")
    with pytest.raises(CheckpointError, match="holds a ldm model, not a ddpm model"):
        load_ddpm(folder / "target", CPU)
    ddpm = {key: value for key, value in MODEL.items() if key != "autoencoder"} | {"family": "ddpm"}
    train_ddpm(IMAGES[:8], ddpm, {**TRAINING, "steps": 1}, 0, tmp_path / "ddpm", tmp_path / "ddpm.pt", CPU)
    with pytest.raises(CheckpointError, match="holds a ddpm model, not a ldm model"):
        load_ldm(tmp_path / "ddpm", CPU)
    # a role model is never trained on top of something that is not a trained autoencoder
    with pytest.raises(CheckpointError, match="holds a ddpm model, not a autoencoder model"):
        train_ldm(IMAGES[:8], MODEL, TRAINING, 0, tmp_path / "ldm", tmp_path / "ldm.pt", CPU, tmp_path / "ddpm")


def test_the_latent_loss_is_the_denoising_loss_of_the_encoded_record_and_neighbours():
    """With a network that returns its input and a known encoder (2 x 2 average pooling), every entry
    of L can be computed by hand: the neighbours are made in pixel space, then encoded, and the
    noise has the latent's shape and is common to a record and its neighbours."""
    def encoder(images):
        return torch.nn.functional.avg_pool2d(images, 2)

    alphas = torch.linspace(0.99, 0.5, 1000)
    timesteps, strengths, record_ids = [0, 700], [0.9, 0.75], [5, 11, 12]
    losses = diffusion_losses(lambda noisy, t: noisy, alphas, IMAGES[:3], record_ids, timesteps, "crop", strengths,
                              seed=3, batch_size=7, show_progress=False, encoder=encoder)
    assert losses.shape == (3, 2, 3)
    neighbours = make_neighbours(torch.from_numpy(IMAGES[:3]), "crop", strengths)
    for row, record_id in enumerate(record_ids):
        noise = record_noise(3, record_id, (2, 1, 4, 4))
        for m, timestep in enumerate(timesteps):
            for n in range(3):
                latent = encoder(neighbours[row, n:n + 1])[0]
                noisy = alphas[timestep].sqrt() * latent + (1 - alphas[timestep]).sqrt() * noise[m]
                assert losses[row, m, n] == pytest.approx(float((noisy - noise[m]).pow(2).mean()), rel=1e-5)


def test_model_losses_of_an_ldm_folder_use_its_encoder(trained):
    folder, _ = trained
    losses, axis = model_losses(folder / "target", "ldm", IMAGES[:4], [0, 1, 2, 3], ESTIMATION, PERTURBATION, 0,
                                "target", CPU, show_progress=False)
    unet, scheduler, autoencoder = load_ldm(folder / "target", CPU)
    expected = diffusion_losses(lambda noisy, t: unet(noisy, t).sample, scheduler.alphas_cumprod, IMAGES[:4],
                                [0, 1, 2, 3], ESTIMATION["timesteps"], "crop", PERTURBATION["strengths"], 0,
                                batch_size=16, show_progress=False,
                                encoder=lambda images: encode_latents(autoencoder, images))
    assert axis.tolist() == [0, 300] and losses.shape == (4, 2, 3) and np.isfinite(losses).all()
    np.testing.assert_array_equal(losses, expected)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "pndm"])
def test_samplers_generate_latents_that_the_autoencoder_decodes_to_images(trained, sampler):
    folder, _ = trained
    unet, scheduler, autoencoder = load_ldm(folder / "target", CPU)
    images = sample_images(unet, scheduler.config, sampler, 5, 2, 0, CPU, latent_decoder(autoencoder))
    assert images.shape == (2, 1, 8, 8) and np.isfinite(images).all() and np.abs(images).max() <= 1


def test_autoencoder_records_lie_outside_every_split_or_the_key_is_named():
    splits = {"target_members": [0, 1], "target_holdout": [2], "shadow_members": [3], "shadow_holdout": [4],
              "reference_members": [5], "reference_holdout": [6]}
    chosen = records_outside_splits(splits, 12, 4, seed=0)
    assert len(chosen) == 4 and set(chosen) <= set(range(7, 12)) and list(chosen) == sorted(chosen)
    assert list(chosen) == list(records_outside_splits(splits, 12, 4, seed=0))
    with pytest.raises(DataError, match=r"^model.autoencoder.training_records: 6 records asked for but only 5 of 12"):
        records_outside_splits(splits, 12, 6, seed=0)


def _tiny_ldm_config(**edits):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {"tiny_ldm": config["experiments"]["tiny_ldm"]}
    experiment = config["experiments"]["tiny_ldm"]
    for key, value in edits.items():
        section, name = key.split(".", 1)
        experiment[section][name] = value
    return config


@pytest.mark.parametrize("edits, message", [
    ({"attacks.pia": {"t": 200}}, "experiments.tiny_ldm.attacks: pia query a pixel-space diffusion model's noise prediction"),
    ({"model.autoencoder": None}, "experiments.tiny_ldm.model.autoencoder: None is not of type 'object'"),
    ({"model.block_out_channels": [8, 8, 8, 8, 8]},  # 16 px images, 8 px latents: four halvings are too many
     "experiments.tiny_ldm.model.autoencoder.block_out_channels: the U-Net's input side 8 is not divisible by 2^4"),
])
def test_ldm_config_errors_name_the_key(edits, message):
    with pytest.raises(ConfigError) as error:
        check_config(_tiny_ldm_config(**edits), PROJECT / "workflow" / "schemas" / "config.schema.yaml")
    assert str(error.value).startswith(message)


def test_tiny_ldm_config_is_valid_and_an_autoencoder_outside_ldm_is_refused():
    schema = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
    check_config(_tiny_ldm_config(), schema)
    config = _tiny_ldm_config(**{"model.family": "ddpm"})
    with pytest.raises(ConfigError, match="^experiments.tiny_ldm.model"):
        check_config(config, schema)
