"""DP-SGD training (pfami.models.privacy): the accounting, the step, resuming, and the config checks."""

import json
import re

import numpy as np
import pytest
import torch
import yaml

from pfami.config import ConfigError, check_config
from pfami.models.ddpm import load_ddpm, train_ddpm
from pfami.models.privacy import check_private_model, poisson_batch, private_training
from pfami.models.training import private_step
from pfami.models.vae import load_vae, train_vae
from tests.conftest import PROJECT, TINY_CONFIG, killed_after_checkpoint

MODEL = {"family": "ddpm", "block_out_channels": [8, 16], "layers_per_block": 1, "attention_levels": [],
         "train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02}
# One accounting for the whole file (it is cached per process: seconds of PRV accounting).
PRIVACY = {"epsilon": 2.0, "delta": 1e-2, "max_grad_norm": 1.0}
TRAINING = {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 1, "checkpoint_every": 3,
            "privacy": PRIVACY}
IMAGES = np.random.default_rng(0).uniform(-1, 1, (32, 1, 8, 8)).astype(np.float32)
CPU = torch.device("cpu")
SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"


def _weights(folder):
    unet, _ = load_ddpm(folder, CPU)
    return unet.state_dict()


def test_dp_training_records_its_accounting_and_differs_from_plain_training(tmp_path):
    curve = train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "dp", tmp_path / "dp.pt", CPU)
    plain_training = {key: value for key, value in TRAINING.items() if key != "privacy"}
    train_ddpm(IMAGES, MODEL, plain_training, 0, tmp_path / "plain", tmp_path / "plain.pt", CPU)
    record = json.loads((tmp_path / "dp" / "training.json").read_text())["privacy"]
    assert {key: record[key] for key in ("epsilon", "delta", "max_grad_norm", "steps", "accountant", "sampling")} == \
        {"epsilon": 2.0, "delta": 1e-2, "max_grad_norm": 1.0, "steps": 6, "accountant": "prv", "sampling": "poisson"}
    assert record["sampling_rate"] == 8 / 32 and record["members"] == 32 and record["expected_batch_size"] == 8
    # the accountant's noise multiplier certifies at most the configured epsilon (within Opacus' tolerance)
    assert record["noise_multiplier"] > 0.5 and 2.0 - 0.011 <= record["certified_epsilon"] <= 2.0
    assert len(curve) == 6 and all(np.isfinite(curve))
    dp, plain = _weights(tmp_path / "dp"), _weights(tmp_path / "plain")
    assert any(not torch.equal(dp[name], plain[name]) for name in dp)
    assert not (tmp_path / "dp.pt").exists()


def test_interrupted_dp_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    straight_curve = train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "straight", tmp_path / "unused.pt", CPU)
    with killed_after_checkpoint(monkeypatch, 3):
        train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "resumed", tmp_path / "state.pt", CPU)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 3 and state["noise_generator"] is not None
    resumed_curve = train_ddpm(IMAGES, MODEL, TRAINING, 0, tmp_path / "resumed", tmp_path / "state.pt", CPU)
    assert resumed_curve == straight_curve
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert json.loads((tmp_path / "straight" / "training.json").read_text()) == \
        json.loads((tmp_path / "resumed" / "training.json").read_text())


def test_the_vae_trains_with_dp(tmp_path):
    model = {"family": "vae", "block_out_channels": [4, 8], "latent_dim": 4}
    curve = train_vae(IMAGES, model, {**TRAINING, "steps": 2}, 0, tmp_path / "vae", tmp_path / "vae.pt", CPU)
    assert len(curve) == 2 and all(np.isfinite(curve))
    assert json.loads((tmp_path / "vae" / "training.json").read_text())["privacy"]["steps"] == 2
    load_vae(tmp_path / "vae", CPU)


def test_poisson_batches_draw_each_record_independently():
    generator = torch.Generator().manual_seed(0)
    sizes, counts = [], torch.zeros(200)
    for _ in range(2000):
        batch = poisson_batch(200, 0.32, generator)
        assert len(torch.unique(batch)) == len(batch)  # without replacement
        sizes.append(len(batch))
        counts[batch] += 1
    # Binomial(200, 0.32): mean 64, variance 43.5; each record in about 32% of the batches
    assert abs(np.mean(sizes) - 64) < 0.5 and abs(np.var(sizes) - 43.5) < 5
    assert counts.min() > 0.27 * 2000 and counts.max() < 0.37 * 2000


def _linear_setup(noise_multiplier, max_grad_norm):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.0)
    accounting = {"noise_multiplier": noise_multiplier, "max_grad_norm": max_grad_norm, "expected_batch_size": 4,
                  "sampling_rate": 0.5}
    network, dp_optimiser = private_training(model, optimiser, accounting, torch.Generator().manual_seed(1))
    return model, network, dp_optimiser, accounting


def test_a_dp_step_is_the_sum_of_clipped_record_gradients_over_the_expected_batch_size():
    model, network, dp_optimiser, accounting = _linear_setup(noise_multiplier=0.0, max_grad_norm=0.01)
    data = torch.randn(10, 3, generator=torch.Generator().manual_seed(2))

    def step_loss(net, batch, generator):
        return net(batch).pow(2).mean()

    generator = torch.Generator().manual_seed(3)
    batch_index = poisson_batch(10, 0.5, torch.Generator().manual_seed(3))
    private_step(network, dp_optimiser, step_loss, data, accounting, generator, CPU, 0)
    weight = model.weight.detach()[0]
    expected = torch.zeros(3)
    for record in data[batch_index]:
        gradient = 2 * (record @ weight) * record  # d/dw (w . x)^2
        expected += gradient * min(1.0, 0.01 / (gradient.norm().item() + 1e-6))
    assert len(batch_index) > 0
    assert torch.allclose(model.weight.grad[0], expected / 4, atol=1e-7)


def test_an_empty_poisson_sample_is_a_noise_only_step():
    model, network, dp_optimiser, accounting = _linear_setup(noise_multiplier=1.0, max_grad_norm=1.0)
    loss = private_step(network, dp_optimiser, lambda net, batch, generator: net(batch).sum(), torch.randn(5, 3),
                        {**accounting, "sampling_rate": 0.0}, torch.Generator().manual_seed(0), CPU, 0)
    assert np.isnan(loss)
    # the gradient is the noise alone: N(0, (1 x 1)^2) / 4 per coordinate, not zero
    assert model.weight.grad.abs().sum() > 0


def test_a_layer_opacus_cannot_train_is_refused_with_the_key():
    with pytest.raises(ValueError, match=r"^training\.privacy: the model has 1 layer\(s\) Opacus cannot train"):
        check_private_model(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)))


@pytest.mark.parametrize("change, message", [
    ({"privacy": {**PRIVACY, "epsilon": 0}}, "experiments.tiny.training.privacy.epsilon: 0 is not positive"),
    ({"privacy": {**PRIVACY, "epsilon": -1.0}}, "experiments.tiny.training.privacy.epsilon: -1.0 is not positive"),
    ({"privacy": {**PRIVACY, "delta": 0.0}}, "experiments.tiny.training.privacy.delta: 0.0 must lie in (0, 1 / members)"),
    ({"privacy": {**PRIVACY, "delta": 0.05}}, "experiments.tiny.training.privacy.delta: 0.05 must lie in (0, 1 / members)"),
    ({"privacy": {**PRIVACY, "max_grad_norm": 0}}, "experiments.tiny.training.privacy.max_grad_norm: 0 is not positive"),
    ({"privacy": PRIVACY, "gradient_clip": 1.0}, "experiments.tiny.training.gradient_clip: DP-SGD clips"),
    ({"privacy": PRIVACY, "batch_size": 24}, "experiments.tiny.training.batch_size: 24 must be below splits.members"),
    ({"privacy": {"epsilon": 1.0, "delta": 1e-3}}, "experiments.tiny.training.privacy: 'max_grad_norm' is a required"),
])
def test_bad_privacy_settings_are_refused_up_front_with_one_line(change, message):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["training"].update(change)
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_good_privacy_settings_pass_and_evaluation_delta_is_checked():
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["training"]["privacy"] = PRIVACY
    check_config(config, SCHEMA)
    config["experiments"]["tiny"]["evaluation"]["delta"] = 1e-3
    with pytest.raises(ConfigError, match="evaluation.delta: a DP-trained model's eps_lb"):
        check_config(config, SCHEMA)
    del config["experiments"]["tiny"]["training"]["privacy"]
    config["experiments"]["tiny"]["evaluation"]["delta"] = 0.05
    with pytest.raises(ConfigError, match=r"evaluation.delta: 0.05 must be below 1 / members \(0.0417\)"):
        check_config(config, SCHEMA)


# --- the privacy study's experiments and its check --------------------------------------------------

STUDY = {"experiment": "tiny", "epsilons": [4, 1], "delta": 1e-2, "max_grad_norm": 1.0,
         "training": {"steps": 6}, "attacks": ["loss", "pfami_met"]}


def test_the_study_derives_one_experiment_per_epsilon_and_shares_the_non_private_roles():
    from pfami.privacy_study import study_experiments

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["privacy"] = {**STUDY, "private_roles": ["target"]}
    check_config(config, SCHEMA)
    experiments, shared = study_experiments(config)
    assert list(experiments) == ["privacy/tiny/eps_inf", "privacy/tiny/eps_4", "privacy/tiny/eps_1"]
    plain, private = experiments["privacy/tiny/eps_inf"], experiments["privacy/tiny/eps_1"]
    assert "privacy" not in plain["training"] and plain["evaluation"]["delta"] == 1e-2
    assert private["training"]["privacy"] == {"epsilon": 1, "delta": 1e-2, "max_grad_norm": 1.0}
    assert private["training"]["steps"] == 6 and "delta" not in private["evaluation"]
    assert list(private["attacks"]) == ["loss", "pfami_met"] and "ablations" not in private
    assert shared["privacy/tiny/eps_1"] == {"shadow": "privacy/tiny/eps_inf", "reference": "privacy/tiny/eps_inf"}
    assert "privacy/tiny/eps_inf" not in shared


@pytest.mark.parametrize("change, message", [
    ({"experiment": "nope"}, "privacy.experiment: 'nope' is not an experiment of this config"),
    ({"epsilons": [4, 0]}, "privacy.epsilons: [0] are not positive"),
    ({"delta": 0.05}, "privacy.delta: 0.05 must lie in (0, 1 / members)"),
    ({"max_grad_norm": -1}, "privacy.max_grad_norm: -1 is not positive"),
    ({"private_roles": ["shadow"]}, "privacy.private_roles: must include target"),
    ({"attacks": ["secret"]}, "privacy.attacks: ['secret'] are not attacks of experiments.tiny"),
    ({"training": {"gradient_clip": 1.0}}, "privacy.training.gradient_clip: DP-SGD clips"),
    ({"training": {"stepz": 3}}, "privacy.training: Additional properties are not allowed"),
])
def test_bad_study_settings_are_refused_with_the_key(change, message):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["privacy"] = {**STUDY, **change}
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_study_fails_loudly_when_an_empirical_epsilon_exceeds_its_epsilon():
    from pfami.privacy_study import check_no_violation, violations

    rows = [{"attack": "loss", "epsilon": float("inf"), "eps_lb": 3.0, "delta": 1e-3},
            {"attack": "loss", "epsilon": 1.0, "eps_lb": 0.4, "delta": 1e-3}]
    check_no_violation(rows)
    rows.append({"attack": "pfami_met", "epsilon": 1.0, "eps_lb": 1.2, "delta": 1e-3})
    assert violations(rows) == rows[2:]
    with pytest.raises(AssertionError, match="pfami_met at epsilon 1: eps_lb 1.200"):
        check_no_violation(rows)


def test_the_study_plans_dp_training_on_a_gpu_and_estimates_the_shared_references_losses_once():
    """`snakemake -n privacy` on the default config, through the SLURM profile: every DP training asks
    for a GPU like any training, and the reference's loss tensors, the same model's on the same records
    at every epsilon, are estimated once, by the non-private experiment."""
    from tests.conftest import run_snakemake

    plan = run_snakemake(PROJECT, "-n", "--forceall", "--profile", "workflow/profiles/slurm", "privacy").stdout
    jobs = re.findall(r"^rule (\w+):\n((?:(?!rule ).*\n)*?)\s+resources: (.*)$", plan, re.MULTILINE)
    trainings = [(block, requested) for rule, block, requested in jobs if rule == "train_model"]
    private = [block for block, _ in trainings if "eps_inf" not in block]
    assert len(private) == 6 and all("gpu=1" in requested for _, requested in trainings)  # 3 epsilons x 2 roles
    estimated = re.findall(r"output: (\S+/losses/\S+?)(?:, (\S+))?\n", plan)
    written = {path for pair in estimated for path in pair if path}
    references = {path for path in written if "/reference-on-" in path}
    assert references == {f"results/privacy/digits_ddpm/eps_inf/losses/reference-on-{records}.npz"
                          for records in ("target", "shadow")}
    assert len(written - references) == 8  # each experiment's target and shadow model on its own records
    assert all("gpu=1" in requested for rule, _, requested in jobs if rule.startswith("estimate_"))
