"""Checks of an experiment config that a JSON schema cannot express (run before anything else),
and the settings the workflow's rules read from it.

Torch-free on purpose: Snakemake imports this module every time it starts (once per job on
SLURM and per DVC stage), so it must load in a fraction of a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import yaml

from pfami.mechanisms import check_mechanism


# The delta of the empirical epsilon (eps_lb in metrics.json) of a model trained without DP when
# evaluation.delta is absent: below 1 / records for any data set this pipeline trains on. A DP-trained
# model's eps_lb takes its own training.privacy.delta.
DEFAULT_DELTA = 1e-5


def evaluation_delta(experiment: dict) -> float:
    """The delta at which an experiment's empirical epsilon is stated."""
    privacy = experiment["training"].get("privacy")
    if privacy:
        return float(privacy["delta"])
    return float(experiment["evaluation"].get("delta", DEFAULT_DELTA))


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and what to do."""


# --- the baseline attacks that query the model (SecMI, PIA) -----------------------------


FAMILY_OF = {"secmi_stat": "secmi", "secmi_nns": "secmi", "pia": "pia", "pian": "pia"}
FAMILIES = ("secmi", "pia")


def family_settings(family: str, attacks: dict[str, dict]) -> dict[str, dict]:
    """The query settings of the family's attacks that ``attacks`` (a config section) lists.

    Only the keys that change the queries are kept, so retuning e.g. SecMI_NNs' epochs does not
    re-query the model."""
    if family not in FAMILIES:
        raise ValueError(f"unknown baseline family {family!r}; choose from {list(FAMILIES)}")
    keys = ("t_sec", "k") if family == "secmi" else ("t",)
    return {attack: {key: settings[key] for key in keys}
            for attack, settings in attacks.items() if FAMILY_OF.get(attack) == family}


def check_baseline_settings(attacks: dict[str, dict], train_timesteps: int) -> None:
    """Raise ``ValueError`` naming the key (relative to ``attacks``) of a setting that cannot work."""
    secmi = family_settings("secmi", attacks)
    for attack, settings in secmi.items():
        try:
            secmi_timesteps(settings["t_sec"], settings["k"])
        except ValueError as error:
            raise ValueError(f"attacks.{attack}: {error}") from None
        if settings["t_sec"] >= train_timesteps:
            raise ValueError(f"attacks.{attack}.t_sec: {settings['t_sec']} is not below model.train_timesteps "
                             f"({train_timesteps})")
    if len({(s["t_sec"], s["k"]) for s in secmi.values()}) > 1:
        raise ValueError("attacks.secmi_nns: t_sec and k must equal those of attacks.secmi_stat (both read the same "
                         "DDIM round trip)")
    for attack, settings in family_settings("pia", attacks).items():
        if settings["t"] >= train_timesteps:
            raise ValueError(f"attacks.{attack}.t: {settings['t']} is not below model.train_timesteps "
                             f"({train_timesteps})")


def secmi_timesteps(t_sec: int = 100, k: int = 10) -> tuple[list[int], int, int]:
    """The timesteps SecMI visits, as in the authors' code.

    Returns ``(inversion_grid, t, t_sec)``: DDIM inversion runs along ``inversion_grid`` =
    ``[0, k, ..., t_sec - k]`` (its last element ``t = t_sec - k`` is where ``x~_t`` lives), then
    one inversion step ``t -> t_sec`` and one denoising step ``t_sec -> t`` give ``x^_t``.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"SecMI stride k must be a positive integer, got {k}")
    if int(t_sec) != t_sec or t_sec < k or t_sec % k:
        raise ValueError(f"SecMI t_sec must be a positive multiple of k={k}, got {t_sec}")
    grid = list(range(0, int(t_sec), int(k)))
    return grid, grid[-1], int(t_sec)


def secmi_queries(t_sec: int = 100, k: int = 10) -> dict[str, int]:
    """``t_sec / k - 1`` inversion steps to ``t_sec - k``, plus one step up and one down:
    ``t_sec / k + 1`` calls per record on the target (11 for the defaults)."""
    grid, _, _ = secmi_timesteps(t_sec, k)
    return {"target": (len(grid) - 1) + 2, "reference": 0}


def pia_queries() -> dict[str, int]:
    """Two calls per record on the target: eps(x_0, 0) and eps(x_t, t). PIAN spends the same."""
    return {"target": 2, "reference": 0}


# --- ablations --------------------------------------------------------------------------


# PFAMI_NNs classifiers trained on the same shadow H by the classifier-seed study (the main one included).
DEFAULT_CLASSIFIER_SEEDS = 5


def ablation_settings(experiment: dict) -> dict:
    """The experiment's ``ablations`` section with every default filled in.

    Defaults: every timestep count 1..M and neighbour count 1..N, only the main mechanism, no
    snapshots (the memorisation study then has the final model alone), the main run's
    records (``records_per_part: null``) and five PFAMI_NNs classifiers (``classifier_seeds``)."""
    section = experiment.get("ablations") or {}
    timestep_count = len(experiment["estimation"]["timesteps"])
    strength_count = len(experiment["perturbation"]["strengths"])
    records = section.get("records_per_part")
    return {
        "timestep_counts": sorted(section.get("timestep_counts") or range(1, timestep_count + 1)),
        "neighbour_counts": sorted(section.get("neighbour_counts") or range(1, strength_count + 1)),
        "mechanisms": list(section.get("mechanisms") or [experiment["perturbation"]["mechanism"]]),
        "snapshot_steps": sorted(set(section.get("snapshot_steps") or []) | {experiment["training"]["steps"]}),
        "records_per_part": records if records is not None else experiment["splits"].get("attacked_per_part"),
        "classifier_seeds": section.get("classifier_seeds") or DEFAULT_CLASSIFIER_SEEDS,
    }


def check_ablations(where: str, experiment: dict) -> None:
    """Refuse ablation settings that cannot work; ``ValueError`` naming the key."""
    if "ablations" not in experiment:
        return
    where = f"{where}.ablations"
    settings = ablation_settings(experiment)
    limits = {"timestep_counts": (len(experiment["estimation"]["timesteps"]), "estimation.timesteps"),
              "neighbour_counts": (len(experiment["perturbation"]["strengths"]), "perturbation.strengths")}
    for key, (limit, source) in limits.items():
        too_many = [count for count in settings[key] if count > limit]
        if too_many:
            raise ValueError(f"{where}.{key}: {too_many} exceed the {limit} values of {source}")
    for mechanism in settings["mechanisms"]:
        try:
            check_mechanism(mechanism, experiment["data"]["channels"])
        except ValueError as error:
            # check_mechanism names the main perturbation key; name the ablation key instead.
            raise ValueError(f"{where}.mechanisms: {str(error).split(': ', 1)[1]}") from None
    steps = experiment["training"]["steps"]
    late = [step for step in settings["snapshot_steps"] if step > steps]
    if late:
        raise ValueError(f"{where}.snapshot_steps: {late} come after training.steps ({steps})")
    splits = experiment["splits"]
    available = min(splits["members"], splits["holdout"], splits.get("attacked_per_part") or splits["members"])
    if settings["records_per_part"] is not None and settings["records_per_part"] > available:
        raise ValueError(f"{where}.records_per_part: {settings['records_per_part']} but the main run attacks only "
                         f"{available} members and hold-outs per role; use at most {available}")


# --- DP-SGD training ---------------------------------------------------------------------


def check_privacy_settings(where: str, training: dict, members: int) -> None:
    """The checks of ``training.privacy`` (DP-SGD, ``pfami.models.privacy``); ValueError naming the key.
    The schema bounds the types; NaN and infinity are refused before. The layers are checked by Opacus
    when the training job starts, before its first step."""
    privacy = training.get("privacy")
    if privacy is None:
        return
    key = f"{where}.training.privacy"
    if privacy["epsilon"] <= 0:
        raise ValueError(f"{key}.epsilon: {privacy['epsilon']} is not positive; give epsilon > 0 (or remove "
                         "training.privacy to train without DP)")
    if not 0 < privacy["delta"] < 1 / members:
        raise ValueError(f"{key}.delta: {privacy['delta']} must lie in (0, 1 / members) = (0, {1 / members:.3g}) "
                         f"for {members} members; lower it")
    if privacy["max_grad_norm"] <= 0:
        raise ValueError(f"{key}.max_grad_norm: {privacy['max_grad_norm']} is not positive; give a clipping norm > 0")
    if training["batch_size"] >= members:
        raise ValueError(f"{where}.training.batch_size: {training['batch_size']} must be below splits.members "
                         f"({members}): DP-SGD samples each member with probability batch_size / members")
    if training.get("gradient_clip"):
        raise ValueError(f"{where}.training.gradient_clip: DP-SGD clips each record's gradient at "
                         "training.privacy.max_grad_norm instead; set gradient_clip to null")
    if training.get("precision", "fp32") != "fp32":
        raise ValueError(f"{where}.training.precision: DP-SGD trains in fp32 only; set precision: fp32")


# --- the whole config --------------------------------------------------------------------


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
    from pfami.attacks import NN_ATTACKS, resolved  # here: pfami.attacks reads this module
    from pfami.attacks.learned import check_classifier_settings

    for attack in NN_ATTACKS:
        if attack in experiment["attacks"]:
            try:
                check_classifier_settings(f"{where}.attacks.{attack}", resolved(attack, experiment["attacks"][attack])[1])
            except ValueError as error:
                raise ConfigError(str(error)) from None
    try:
        check_baseline_settings(experiment["attacks"], model.get("train_timesteps", 1000))
    except ValueError as error:
        raise ConfigError(f"{where}.{error}") from None
    splits = experiment["splits"]
    for records in ("members", "holdout"):
        file_key, folder_key = f"target_{records}_file", f"target_{records}_folder"
        if file_key in splits and folder_key in splits:
            raise ConfigError(f"{where}.splits: give either {file_key} or {folder_key}, not both")
    if model["family"] == "ldm" and "ablations" in experiment:
        raise ConfigError(f"{where}.ablations: the ablation studies retrain and re-estimate DDPMs and VAEs only; "
                          "remove the section for model.family ldm")
    if "pretrained" in model:
        if model["family"] != "ddpm":
            raise ConfigError(f"{where}.model.pretrained: only a ddpm target can be given (family is {model['family']})")
        missing = [f"target_{records}_file (or target_{records}_folder)" for records in ("members", "holdout")
                   if f"target_{records}_file" not in splits and f"target_{records}_folder" not in splits]
        if missing:
            raise ConfigError(f"{where}.splits: a given target model (model.pretrained) needs {' and '.join(missing)}, "
                              "the records it was and was not trained on")
        if experiment.get("reference_model") == "crossed":
            raise ConfigError(f"{where}.reference_model: a given target model (model.pretrained) may have trained on "
                              "the shadow's records, so it cannot calibrate them; set reference_model: own")
    training = experiment["training"]
    if training.get("warmup_steps", 0) >= training["steps"]:
        raise ConfigError(f"{where}.training.warmup_steps must be below training.steps")
    try:
        check_privacy_settings(where, training, splits["members"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if "privacy" in training and "delta" in experiment["evaluation"]:
        raise ConfigError(f"{where}.evaluation.delta: a DP-trained model's eps_lb is stated at its "
                          "training.privacy.delta; remove evaluation.delta")
    delta = experiment["evaluation"].get("delta")
    if delta is not None and delta >= 1 / splits["members"]:
        raise ConfigError(f"{where}.evaluation.delta: {delta} must be below 1 / members ({1 / splits['members']:.3g})")
    if "privacy" in model.get("autoencoder", {}).get("training", {}):
        raise ConfigError(f"{where}.model.autoencoder.training.privacy: the autoencoder trains on records outside "
                          "the splits, so DP protects no member there; DP-train the role models (training.privacy)")
    if "privacy" in training and "pretrained" in model:
        raise ConfigError(f"{where}.training.privacy: a given target model (model.pretrained) was trained elsewhere; "
                          "its privacy cannot be set here (the key would DP-train only the shadow and reference)")
    try:
        check_ablations(where, experiment)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_finite(value, key: str = "") -> None:
    """Refuse NaN and infinity anywhere in ``value`` (every mapping and list walked, in order): the JSON
    schema's bounds cannot catch them (every comparison with NaN is false; most keys have no maximum).
    ``ConfigError`` naming the dotted key, a list element by its index (``perturbation.strengths.1``)."""
    if isinstance(value, dict):
        for name, item in value.items():
            check_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_finite(item, f"{key}.{index}" if key else str(index))
    elif isinstance(value, float) and not math.isfinite(value):
        sign = "-" if value < 0 else ""
        what = "NaN is not a number" if math.isnan(value) else f"{sign}infinity is not a finite number"
        raise ConfigError(f"{key or '(top level)'}: {what}; give a finite value")


def check_config(config: dict, schema_path: str | Path) -> None:
    """Refuse NaN and infinity, validate against the JSON schema, then the cross-key rules; one-line
    ``ConfigError`` on failure."""
    check_finite(config)
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"{key}: {error.message}; see config/README.md")
    for name, experiment in config["experiments"].items():
        check_experiment(name, experiment)
    check_privacy_study(config, schema)


def check_privacy_study(config: dict, schema: dict) -> None:
    """The ``privacy`` section (``pfami.privacy_study``): its own keys, then each experiment it derives,
    against the experiment schema and the checks above, an error naming ``privacy.KEY``."""
    from pfami.privacy_study import check_study_settings, study_experiments

    try:
        check_study_settings(config)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    experiment_schema = {"$ref": "#/$defs/experiment", "$defs": schema["$defs"]}
    for name, experiment in study_experiments(config)[0].items():
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(experiment_schema).iter_errors(experiment))
        if error is not None:
            key = ".".join(str(part) for part in error.absolute_path)
            raise ConfigError(f"privacy.{key}: {error.message} (in the study's experiment {name}); see config/README.md")
        try:
            check_experiment(name, experiment)
        except ConfigError as error:
            raise ConfigError(str(error).replace(f"experiments.{name}.", "privacy.")) from None


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
            f"{'common' if experiment['estimation'].get('common_noise', True) else 'independent'} noise"
            + ("; crossed reference (the shadow and target models calibrate each other's records)."
               if experiment.get("reference_model") == "crossed" else "."))
