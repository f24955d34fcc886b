"""SecMI / PIA queries as the workflow stores them, their scoring, cost and config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pfami.attacks import ATTACKS, DISPLAY_NAMES, queries_per_record, score_attack
from pfami.attacks.baseline_queries import CountingPredictor, query_family
from pfami.attacks.baselines import pia_attack, pian_attack, secmi_attack
from pfami.config import FAMILY_OF, ConfigError, check_baseline_settings, check_config, family_settings

PROJECT = Path(__file__).resolve().parents[1]
ATTACK_SETTINGS = {"pfami_nns": {"c": 1.0},
                   "secmi_stat": {"t_sec": 40, "k": 20},
                   "secmi_nns": {"t_sec": 40, "k": 20, "c": 1.0},
                   "pia": {"t": 200}, "pian": {"t": 300}}


@pytest.fixture(scope="module")
def alphas_cumprod() -> torch.Tensor:
    return torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 1000), dim=0)


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A nonlinear, timestep-dependent noise predictor (stands in for a U-Net)."""
    return torch.tanh(x * (1 + t.float().view(-1, 1, 1, 1) / 500)) + 0.1 * x.roll(1, dims=-1)


def toy_images(count: int = 6) -> torch.Tensor:
    return torch.rand((count, 1, 4, 4), generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_family_settings_keep_only_what_changes_the_queries():
    assert family_settings("secmi", ATTACK_SETTINGS) == {"secmi_stat": {"t_sec": 40, "k": 20},
                                                         "secmi_nns": {"t_sec": 40, "k": 20}}
    assert family_settings("pia", ATTACK_SETTINGS) == {"pia": {"t": 200}, "pian": {"t": 300}}
    assert family_settings("pia", {"loss": {}}) == {}
    with pytest.raises(ValueError, match="unknown baseline family"):
        family_settings("loss", ATTACK_SETTINGS)


@pytest.mark.parametrize("edit, message", [
    ({"secmi_nns": {"t_sec": 60, "k": 20, "epochs": 1, "learning_rate": 0.1}}, "attacks.secmi_nns: t_sec and k must"),
    ({"secmi_stat": {"t_sec": 45, "k": 20}}, "attacks.secmi_stat: SecMI t_sec must be a positive multiple"),
    ({"secmi_stat": {"t_sec": 1000, "k": 20}, "secmi_nns": {"t_sec": 1000, "k": 20, "epochs": 1, "learning_rate": 1}},
     "attacks.secmi_stat.t_sec: 1000 is not below"),
    ({"pian": {"t": 1000}}, "attacks.pian.t: 1000 is not below"),
])
def test_settings_that_cannot_work_are_refused_naming_the_key(edit, message):
    check_baseline_settings(ATTACK_SETTINGS, 1000)
    with pytest.raises(ValueError) as error:
        check_baseline_settings({**ATTACK_SETTINGS, **edit}, 1000)
    assert str(error.value).startswith(message)


def test_the_configs_list_every_attack_and_pass_the_checks():
    schema = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
    for path in (PROJECT / "config" / "config.yaml", PROJECT / "tests" / "data" / "tiny_config.yaml"):
        config = yaml.safe_load(path.read_text())
        check_config(config, schema)
        for experiment in config["experiments"].values():
            # DDPM experiments run every attack; SecMI / PIA query a pixel-space noise predictor, so a VAE
            # or an LDM has none (the tiny LDM runs two attacks only, to stay cheap)
            family, attacks = experiment["model"]["family"], set(experiment["attacks"])
            if family == "ddpm":
                assert attacks == set(ATTACKS)
            elif family == "vae":
                assert attacks == set(ATTACKS) - set(FAMILY_OF)
            else:
                assert attacks <= set(ATTACKS) - set(FAMILY_OF)
    assert set(ATTACKS) == set(DISPLAY_NAMES)
    broken = yaml.safe_load((PROJECT / "tests" / "data" / "tiny_config.yaml").read_text())
    broken["experiments"]["tiny"]["attacks"]["pia"]["t"] = 5000
    with pytest.raises(ConfigError, match=r"^experiments\.tiny\.attacks\.pia\.t: 5000"):
        check_config(broken, schema)


def test_secmi_queries_are_the_attack_and_count_their_evaluations(alphas_cumprod):
    images = toy_images()
    arrays = query_family("secmi", family_settings("secmi", ATTACK_SETTINGS), toy_model, images, alphas_cumprod,
                          batch_size=4)
    direct = secmi_attack(toy_model, images, alphas_cumprod, t_sec=40, k=20)
    np.testing.assert_allclose(arrays["secmi_errors"], direct.errors)
    np.testing.assert_allclose(arrays["secmi_error_images"], direct.error_images)
    assert np.all(arrays["secmi_errors"] > 0)
    # Inversion 0 -> 20, then 20 -> 40 and back: 3 evaluations per record, as the tables report.
    for attack in ("secmi_stat", "secmi_nns"):
        assert float(arrays[f"{attack}_evaluations"]) == 3
        assert queries_per_record(attack, 10, 10, ATTACK_SETTINGS[attack]) == {"target": 3, "reference": 0}
    with pytest.raises(ValueError, match="needs the attack's t_sec and k"):
        queries_per_record("secmi_stat", 10, 10)
    with pytest.raises(ValueError, match="different round trips"):
        query_family("secmi", {"secmi_stat": {"t_sec": 40, "k": 20}, "secmi_nns": {"t_sec": 40, "k": 10}}, toy_model,
                     images, alphas_cumprod, 4)


def test_pia_queries_use_each_attacks_own_timestep(alphas_cumprod):
    images = toy_images()
    arrays = query_family("pia", family_settings("pia", ATTACK_SETTINGS), toy_model, images, alphas_cumprod,
                          batch_size=5)
    np.testing.assert_allclose(arrays["pia_scores"], pia_attack(toy_model, images, alphas_cumprod, t=200))
    np.testing.assert_allclose(arrays["pian_scores"], pian_attack(toy_model, images, alphas_cumprod, t=300))
    assert not np.allclose(arrays["pian_scores"], pian_attack(toy_model, images, alphas_cumprod, t=200))
    for attack in ("pia", "pian"):
        assert float(arrays[f"{attack}_evaluations"]) == 2
        assert queries_per_record(attack, 10, 10, ATTACK_SETTINGS[attack]) == {"target": 2, "reference": 0}
    only_pia = query_family("pia", {"pia": {"t": 200}}, toy_model, images, alphas_cumprod, batch_size=5)
    assert "pian_scores" not in only_pia


def test_counting_predictor_counts_network_inputs():
    counter = CountingPredictor(toy_model)
    counter(torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long))
    counter(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))
    assert counter.evaluations == 5


def query_file(errors: np.ndarray, is_member: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    noise = np.random.default_rng(seed).random((len(errors), 1, 4, 4)) * 0.1
    return {"is_member": is_member, "secmi_errors": errors, "pia_scores": -errors, "pian_scores": -2 * errors,
            "secmi_error_images": (errors[:, None, None, None] + noise).astype(np.float32)}


def test_baseline_scores_put_members_higher():
    # Members have small errors, non-members large ones.
    is_member = np.repeat([True, False], 12)
    errors = np.where(is_member, 0.1, 1.0) + np.linspace(0, 0.05, 24)
    shadow, target = query_file(errors, is_member, 0), query_file(errors[::-1].copy(), is_member[::-1].copy(), 1)
    shadow_scores, target_scores = score_attack("secmi_stat", ATTACK_SETTINGS["secmi_stat"], shadow, target, 0)
    np.testing.assert_allclose(shadow_scores, -errors)
    assert target_scores[~target["is_member"]].max() < target_scores[target["is_member"]].min()
    for attack in ("pia", "pian"):
        np.testing.assert_allclose(score_attack(attack, {}, shadow, target, 0)[1], target[f"{attack}_scores"])
    shadow_scores, target_scores = score_attack("secmi_nns", ATTACK_SETTINGS["secmi_nns"], shadow, target, 0)
    assert shadow_scores.shape == (24,) and target_scores.shape == (24,)
    # Trained only on the shadow records, it still ranks the target's members first.
    assert target_scores[target["is_member"]].mean() > target_scores[~target["is_member"]].mean()
