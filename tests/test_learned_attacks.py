"""The learned attacks' default classifier (pfami.attacks.learned): stable by construction."""

import numpy as np
import pytest

from pfami.attacks import score_attack
from pfami.attacks.learned import CONVEX_CLASSIFIERS, ConvexClassifier, convex_classifier_scores
from pfami.metrics import roc_summary

DEFAULT_SETTINGS = {"classifier": "svm", "c": 1.0}


def _overlapping_features(count, shape, seed, shift=0.35):
    """Members have every feature raised a little: overlapping classes (AUC about 0.8), as on the digits."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (count, *shape)).astype(np.float32)
    is_member = np.arange(count) % 2 == 0
    features[is_member] += shift * rng.uniform(0, 1, shape).astype(np.float32)
    return features, is_member


@pytest.mark.parametrize("classifier", CONVEX_CLASSIFIERS)
def test_nothing_is_random_and_shadow_scores_are_leave_one_out(classifier):
    shadow, shadow_labels = _overlapping_features(60, (10, 10), seed=0)
    target, target_labels = _overlapping_features(60, (10, 10), seed=1)
    attack = {"classifier": classifier, "c": 0.01 if classifier == "logistic" else 1.0}
    runs = [score_attack("pfami_nns", attack, {"fluctuation": shadow, "is_member": shadow_labels},
                         {"fluctuation": target}, seed) for seed in (0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(*runs))  # the seed plays no part
    out_of_sample, target_scores = runs[0]
    assert roc_summary(target_scores, target_labels)["auc"] > 0.75
    # A shadow record's score is that of the model fitted on the 59 others...
    model = ConvexClassifier(classifier, shadow, attack["c"])
    others = np.arange(60) != 7
    assert out_of_sample[7] == model.fit_scores(shadow_labels, others, model.rows()[7:8])[0]
    # ...so it is honest: below the in-sample fit's AUC.
    in_sample = model.fit_scores(shadow_labels, np.ones(60, bool), model.rows())
    assert roc_summary(out_of_sample, shadow_labels)["auc"] < roc_summary(in_sample, shadow_labels)["auc"]


def test_the_svm_is_scikit_learns_on_standardised_features():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    shadow, shadow_labels = _overlapping_features(80, (1, 4, 4), seed=5)
    target, _ = _overlapping_features(20, (1, 4, 4), seed=6)
    _, ours = convex_classifier_scores("svm", shadow, shadow_labels, target, 1.0)
    reference = make_pipeline(StandardScaler(), SVC(C=1.0, gamma="scale", tol=1e-8))
    theirs = reference.fit(shadow.reshape(80, -1), shadow_labels).decision_function(target.reshape(20, -1))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attack, array, shape", [("pfami_nns", "fluctuation", (10, 10)),
                                                  ("secmi_nns", "secmi_error_images", (1, 16, 16))])
def test_a_one_in_a_million_change_of_the_features_barely_moves_the_auc(attack, array, shape):
    settings = DEFAULT_SETTINGS
    # Another CPU's kernels change the features in their last bits; the authors' ResNet turned such
    # differences into 0.03 of AUC. The default classifier must not amplify them.
    shadow, shadow_labels = _overlapping_features(400, shape, seed=2)
    target, target_labels = _overlapping_features(400, shape, seed=3)
    rng = np.random.default_rng(4)

    def perturbed(features):
        return (features * (1 + 1e-6 * rng.normal(size=features.shape))).astype(np.float32)

    aucs = []
    for shadow_features, target_features in ((shadow, target), (perturbed(shadow), perturbed(target))):
        _, target_scores = score_attack(attack, settings, {array: shadow_features, "is_member": shadow_labels},
                                        {array: target_features}, seed=7)
        aucs.append(roc_summary(target_scores, target_labels)["auc"])
    assert 0.6 < aucs[0] < 0.95
    assert abs(aucs[1] - aucs[0]) <= 0.002


def test_the_authors_resnet_is_one_key_away_and_its_variant_row_shares_the_seed():
    shadow, shadow_labels = _overlapping_features(24, (10, 10), seed=0)
    target, _ = _overlapping_features(10, (10, 10), seed=1)
    roles = ({"fluctuation": shadow, "is_member": shadow_labels}, {"fluctuation": target})
    resnet = {"classifier": "resnet", "epochs": 2, "learning_rate": 0.01}
    main = score_attack("pfami_nns", resnet, *roles, seed=5)
    variant = score_attack("pfami_nns_resnet", {"epochs": 2, "learning_rate": 0.01}, *roles, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(main, variant))
    default = score_attack("pfami_nns", DEFAULT_SETTINGS, *roles, seed=5)
    assert not np.allclose(default[1], main[1])
    with pytest.raises(ValueError, match="unknown classifier 'forest'"):
        score_attack("pfami_nns", {"classifier": "forest"}, *roles, seed=5)


@pytest.mark.parametrize("attack, settings, message", [
    ("pfami_nns", {"classifier": "logistic", "c": 0.001, "epochs": 60},
     "experiments.digits_ddpm.attacks.pfami_nns.epochs: the logistic classifier does not take it"),
    ("pfami_nns", {"c": 1.0, "learning_rate": 0.01},
     "experiments.digits_ddpm.attacks.pfami_nns.learning_rate: the svm classifier does not take it"),
    ("pfami_nns", {"classifier": "resnet", "epochs": 60, "c": 0.1},
     "experiments.digits_ddpm.attacks.pfami_nns.c: the resnet classifier does not take it"),
    ("pfami_nns", {"classifier": "resnet", "epochs": 60},
     "experiments.digits_ddpm.attacks.pfami_nns: the resnet classifier needs learning_rate"),
    ("secmi_nns", {"t_sec": 100, "k": 10}, "experiments.digits_ddpm.attacks.secmi_nns: the svm classifier needs c"),
    ("pfami_nns", {"classifier": "forest", "c": 1}, "experiments.digits_ddpm.attacks.pfami_nns.classifier: 'forest'"),
    ("pfami_nns_resnet", {"epochs": 60, "learning_rate": 0.01, "c": 1}, "Additional properties are not allowed"),
])
def test_classifier_settings_that_do_not_fit_their_classifier_are_refused_naming_the_key(attack, settings, message):
    from pathlib import Path

    import yaml

    from pfami.config import ConfigError, check_config

    project = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((project / "config" / "config.yaml").read_text())
    check_config(config, project / "workflow" / "schemas" / "config.schema.yaml")
    config["experiments"]["digits_ddpm"]["attacks"][attack] = settings
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check_config(config, project / "workflow" / "schemas" / "config.schema.yaml")
