"""Checks of an experiment config that a JSON schema cannot express (run before anything else)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from pfami.attacks.baseline_queries import FAMILY_OF, check_baseline_settings
from pfami.ablations import check_ablations
from pfami.perturb import check_mechanism


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what to do."""


def _check_diffusion(where: str, model: dict, estimation: dict, image_size: int) -> None:
    if model["beta_start"] >= model["beta_end"]:
        raise ConfigError(f"{where}.model.beta_start must be below beta_end ({model['beta_start']} >= {model['beta_end']})")
    too_late = [t for t in estimation["timesteps"] if t >= model["train_timesteps"]]
    if too_late:
        raise ConfigError(f"{where}.estimation.timesteps: {too_late} not below model.train_timesteps "
                          f"({model['train_timesteps']}); use timesteps in 0..{model['train_timesteps'] - 1}")
    levels = len(model["block_out_channels"])
    bad_levels = [level for level in model.get("attention_levels", []) if level >= levels]
    if bad_levels:
        raise ConfigError(f"{where}.model.attention_levels: {bad_levels} but the U-Net has {levels} levels (0..{levels - 1})")
    unet_input_size, size_key = image_size, "data.image_size"
    if model["family"] == "ldm":
        autoencoder_halvings = len(model["autoencoder"]["block_out_channels"]) - 1
        if image_size % 2 ** autoencoder_halvings:
            raise ConfigError(f"{where}.data.image_size: {image_size} is not divisible by 2^{autoencoder_halvings} (the "
                              f"autoencoder halves it {autoencoder_halvings} times); pick a multiple of "
                              f"{2 ** autoencoder_halvings}")
        # The latent U-Net works on the autoencoder's latent, not on the image.
        unet_input_size, size_key = image_size // 2 ** autoencoder_halvings, "model.autoencoder.block_out_channels"
    if unet_input_size % 2 ** (levels - 1):
        raise ConfigError(f"{where}.{size_key}: the U-Net's input side {unet_input_size} is not divisible by "
                          f"2^{levels - 1} (the U-Net halves it {levels - 1} times); pick a multiple of "
                          f"{2 ** (levels - 1)}")


def check_experiment(name: str, experiment: dict) -> None:
    where = f"experiments.{name}"
    model, estimation, perturbation = experiment["model"], experiment["estimation"], experiment["perturbation"]
    image_size = experiment["data"]["image_size"]
    if model["family"] == "vae":
        halvings = len(model["block_out_channels"])
        if image_size % 2 ** halvings:
            raise ConfigError(f"{where}.data.image_size: {image_size} is not divisible by 2^{halvings} (the VAE "
                              f"halves it once per block_out_channels entry); pick a multiple of {2 ** halvings}")
    else:
        _check_diffusion(where, model, estimation, image_size)
    try:
        check_mechanism(perturbation["mechanism"], experiment["data"]["channels"])
    except ValueError as error:
        raise ConfigError(f"{where}.{error}") from None
    strength_count = len(perturbation["strengths"])
    for attack in ("pfami_met", "pfami_met_single"):
        index = experiment["attacks"].get(attack, {}).get("strength_index")
        if index is not None and index >= strength_count:
            raise ConfigError(f"{where}.attacks.{attack}.strength_index: {index} but there are only {strength_count} "
                              f"strengths (indices 0..{strength_count - 1})")
    baselines = [attack for attack in experiment["attacks"] if attack in FAMILY_OF]
    if baselines and model["family"] != "ddpm":
        # For an LDM they would have to run in latent space; they are implemented for pixel-space DDPMs only.
        raise ConfigError(f"{where}.attacks: {', '.join(baselines)} query a pixel-space diffusion model's noise "
                          f"prediction (model.family ddpm) and are not implemented for model.family {model['family']}; "
                          "remove them")
    try:
        check_baseline_settings(experiment["attacks"], model.get("train_timesteps", 1000))
    except ValueError as error:
        raise ConfigError(f"{where}.{error}") from None
    if model["family"] == "ldm" and "ablations" in experiment:
        raise ConfigError(f"{where}.ablations: the ablation studies retrain and re-estimate DDPMs and VAEs only; "
                          "remove the section for model.family ldm")
    if "pretrained" in model:
        if model["family"] != "ddpm":
            raise ConfigError(f"{where}.model.pretrained: only a ddpm target can be given (family is {model['family']})")
        missing = [key for key in ("target_members_file", "target_holdout_file") if key not in experiment["splits"]]
        if missing:
            raise ConfigError(f"{where}.splits: a given target model (model.pretrained) needs {' and '.join(missing)}, "
                              "index files of the records it was and was not trained on")
    training = experiment["training"]
    if training.get("warmup_steps", 0) >= training["steps"]:
        raise ConfigError(f"{where}.training.warmup_steps must be below training.steps")
    try:
        check_ablations(where, experiment)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_config(config: dict, schema_path: str | Path) -> None:
    """Validate against the JSON schema, then the cross-key rules; one-line ``ConfigError`` on failure."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"{key}: {error.message}; see config/README.md")
    for name, experiment in config["experiments"].items():
        check_experiment(name, experiment)


def describe_experiment(experiment: dict) -> str:
    """One line saying what an experiment attacks, for the results table."""
    data, model, training = experiment["data"], experiment["model"], experiment["training"]
    channels = "x".join(map(str, model["block_out_channels"]))
    if model["family"] == "vae":
        network = f"VAE (conv {channels}, latent {model['latent_dim']}, {training['steps']} steps)"
        proxy = f"{experiment['estimation']['elbo_draws']} ELBO draws"
    elif model["family"] == "ldm":
        autoencoder = model["autoencoder"]
        latent_size = data["image_size"] // 2 ** (len(autoencoder["block_out_channels"]) - 1)
        network = (f"LDM (shared {'x'.join(map(str, autoencoder['block_out_channels']))} AutoencoderKL to a "
                   f"{autoencoder['latent_channels']} x {latent_size} x {latent_size} latent, {channels} latent U-Net, "
                   f"{training['steps']} steps)")
        proxy = f"{len(experiment['estimation']['timesteps'])} timesteps in latent space"
    else:
        network = f"{model['family'].upper()} ({channels} U-Net, {training['steps']} steps)"
        proxy = f"{len(experiment['estimation']['timesteps'])} timesteps"
    source = "scikit-learn digits" if data["source"] == "digits" else data.get("path", data["source"])
    return (f"{network} on {source} at {data['image_size']} px, "
            f"{experiment['splits']['members']} members per model; perturbation: {experiment['perturbation']['mechanism']} "
            f"x {len(experiment['perturbation']['strengths'])} strengths, "
            f"{proxy}, "
            f"{'common' if experiment['estimation'].get('common_noise', True) else 'independent'} noise.")
