import numpy as np
import pytest

from pfami.attacks import queries_per_record, score_attack
from pfami.attacks.pfami import pfami_met_scores, pfami_nns_scores
from pfami.metrics import roc_summary
from tests.conftest import modules_imported_by


def test_pfami_met_means_over_all_entries_or_one_strength():
    fluctuation = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    np.testing.assert_allclose(pfami_met_scores(fluctuation), [2.5, 8.5])
    np.testing.assert_allclose(pfami_met_scores(fluctuation, strength_index=1), [(1 + 4) / 2, (7 + 10) / 2])
    with pytest.raises(ValueError, match="strength_index: 3 is outside 0..2"):
        pfami_met_scores(fluctuation, strength_index=3)


def _toy_fluctuations(count, seed):
    """Members have a raised band at the last strengths; non-members do not (linearly separable)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (count, 10, 10)).astype(np.float32)
    is_member = np.arange(count) % 2 == 0
    features[is_member, :, 6:] += 3.0
    return features, is_member


def test_pfami_nns_learns_a_separable_toy_set_without_target_labels():
    shadow, shadow_labels = _toy_fluctuations(80, seed=0)
    target, target_labels = _toy_fluctuations(60, seed=1)
    for settings in ({"classifier": "logistic", "c": 0.001}, {"classifier": "resnet", "epochs": 20, "learning_rate": 0.01}):
        shadow_scores, target_scores = pfami_nns_scores(shadow, shadow_labels, target, settings, seed=0)
        assert roc_summary(target_scores, target_labels)["auc"] > 0.95
        assert roc_summary(shadow_scores, shadow_labels)["auc"] > 0.9  # out-of-fold, not training fit


def test_a_classifier_ensemble_averages_its_members_and_one_classifier_is_the_plain_attack():
    from pfami.attacks.classifier import cross_fitted_scores
    from pfami.seeding import classifier_seeds

    shadow, shadow_labels = _toy_fluctuations(24, seed=0)
    target, _ = _toy_fluctuations(10, seed=1)
    single = cross_fitted_scores(shadow[:, None], shadow_labels, target[:, None], 2, 0.01, 5)
    via_settings = score_attack("pfami_nns", {"classifier": "resnet", "epochs": 2, "learning_rate": 0.01, "classifiers": 1},
                                {"fluctuation": shadow, "is_member": shadow_labels}, {"fluctuation": target}, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(single, via_settings))
    members = [cross_fitted_scores(shadow[:, None], shadow_labels, target[:, None], 2, 0.01, seed)
               for seed in classifier_seeds(5, 3)]
    ensemble = pfami_nns_scores(shadow, shadow_labels, target,
                                {"classifier": "resnet", "epochs": 2, "learning_rate": 0.01, "classifiers": 3}, seed=5)
    for part in (0, 1):  # out-of-fold shadow scores (for the threshold) and target scores
        np.testing.assert_allclose(ensemble[part], np.mean([member[part] for member in members], axis=0), rtol=1e-12)
    assert not np.allclose(ensemble[1], single[1])


def test_score_attack_dispatches_and_counts_queries():
    fluctuation = np.ones((4, 2, 3), np.float32)
    losses = np.array([[[1.0] * 4] * 2, [[2.0] * 4] * 2, [[3.0] * 4] * 2, [[4.0] * 4] * 2], np.float32)
    role = {"fluctuation": fluctuation, "attacked_model_losses": losses, "reference_model_losses": losses * 0 + 1,
            "is_member": np.array([True, True, False, False])}
    shadow_scores, target_scores = score_attack("loss", {}, role, role, seed=0)
    np.testing.assert_allclose(target_scores, [-1, -2, -3, -4])
    _, calibrated = score_attack("calibrated_loss", {}, role, role, seed=0)
    np.testing.assert_allclose(calibrated, [0, -1, -2, -3])
    assert queries_per_record("pfami_met", 10, 10) == {"target": 110, "reference": 110}
    assert queries_per_record("loss", 10, 10) == {"target": 10, "reference": 0}
    with pytest.raises(ValueError, match="unknown attack"):
        score_attack("nope", {}, role, role, seed=0)


def test_the_workflow_and_the_metric_attacks_import_no_torch():
    # Importing torch costs seconds of CPU in every job: Snakemake (pfami.config, pfami.models), the
    # metric attacks and the ablation studies must not pay for it; only the NN attacks do.
    code = """
import numpy as np
import pfami.ablations, pfami.config, pfami.models, pfami.metrics
from pfami.attacks import score_attack
role = {"fluctuation": np.ones((2, 2, 3)), "attacked_model_losses": np.ones((2, 2, 4)),
        "reference_model_losses": np.ones((2, 2, 4)), "is_member": np.array([True, False])}
for attack in ("loss", "calibrated_loss", "pfami_met"):
    score_attack(attack, {}, role, role, seed=0)
"""
    assert "torch" not in modules_imported_by(code)
