"""The config check's refusal of NaN and infinity, which JSON schema comparisons let through."""

import math

import pytest
import yaml

from pfami.config import ConfigError, check_config
from tests.conftest import PROJECT, TINY_CONFIG

SCHEMA = PROJECT / "workflow" / "schemas" / "config.schema.yaml"


def _set(config: dict, dotted: str, value) -> None:
    """Set ``dotted`` (list elements by index) in ``config``; the key must exist, except a last dict key."""
    *parents, key = dotted.split(".")
    for part in parents:
        config = config[int(part)] if isinstance(config, list) else config[part]
    if isinstance(config, list):
        config[int(key)] = value
    else:
        config[key] = value


@pytest.mark.parametrize("dotted, value, message", [
    ("experiments.tiny.fluctuation.min_loss", math.nan, "NaN is not a number"),
    ("experiments.tiny.model.beta_end", math.nan, "NaN is not a number"),
    ("experiments.tiny.perturbation.strengths.1", math.nan, "NaN is not a number"),
    ("experiments.tiny.training.weight_decay", math.inf, "infinity is not a finite number"),
    ("experiments.tiny.training.learning_rate", math.nan, "NaN is not a number"),
    ("experiments.tiny.attacks.pfami_nns.learning_rate", -math.inf, "-infinity is not a finite number"),
    ("experiments.tiny_ldm.model.autoencoder.training.learning_rate", math.inf, "infinity is not a finite number"),
])
def test_nan_and_infinity_are_refused_in_any_numeric_key_with_one_line(dotted, value, message):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    _set(config, dotted, value)
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    assert str(error.value) == f"{dotted}: {message}; give a finite value"


def test_nan_is_refused_before_the_schema_check():
    # Another key breaks the schema too: the non-finite value is named first, whatever else is wrong.
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tiny"]["splits"]["members"] = "many"
    config["experiments"]["tiny_vae"]["evaluation"]["bootstrap_resamples"] = math.nan
    with pytest.raises(ConfigError, match=r"^experiments\.tiny_vae\.evaluation\.bootstrap_resamples: NaN is not"):
        check_config(config, SCHEMA)


def test_yaml_nan_and_inf_spellings_are_refused():
    text = TINY_CONFIG.read_text().replace("strengths: [0.9, 0.8, 0.7]", "strengths: [0.9, .NaN, 0.7]", 1)
    text = text.replace("beta_end: 0.02", "beta_end: -.Inf", 1)
    with pytest.raises(ConfigError, match=r"^experiments\.tiny\.model\.beta_end: -infinity"):
        check_config(yaml.safe_load(text), SCHEMA)  # the first one met, in the config's order


def test_finite_config_passes():
    check_config(yaml.safe_load(TINY_CONFIG.read_text()), SCHEMA)


def test_a_crossed_reference_is_refused_for_a_given_target_model():
    # A given model may have trained on the shadow's records (digits): it cannot calibrate them.
    config = yaml.safe_load(TINY_CONFIG.read_text())
    tiny = config["experiments"]["tiny"]
    tiny["model"]["pretrained"] = "elsewhere/ddpm"
    tiny["splits"].update(target_members_file="members.txt", target_holdout_file="holdout.txt")
    assert tiny["reference_model"] == "crossed"
    with pytest.raises(ConfigError, match=r"^experiments\.tiny\.reference_model: a given target model .* "
                                          r"set reference_model: own$"):
        check_config(config, SCHEMA)
    tiny["reference_model"] = "own"
    check_config(config, SCHEMA)
