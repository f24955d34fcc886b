import numpy as np
import pytest

from pfami.metrics import (bootstrap_intervals, clopper_pearson_upper, empirical_epsilon, evaluate_attack, fit_threshold,
                           largest_provable_epsilon, operating_point, resampled_figures, roc_summary)

# members: 0.9, 0.8, 0.4 ; non-members: 0.7, 0.3, 0.2, 0.1
SCORES = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
IS_MEMBER = np.array([True, True, True, False, False, False, False])


def test_auc_and_tpr_at_fpr_by_hand():
    summary = roc_summary(SCORES, IS_MEMBER)
    # pairs (member > non-member): 0.9 and 0.8 beat all 4, 0.4 beats 3 -> 11 / 12
    assert summary["auc"] == pytest.approx(11 / 12)
    # at FPR 0 the two top members are found: TPR 2/3 (both levels are below 1/4)
    assert summary["tpr_at_0.01_fpr"] == pytest.approx(2 / 3)
    assert summary["tpr_at_0.001_fpr"] == pytest.approx(2 / 3)


def test_auc_is_exactly_scikit_learns_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    is_member = rng.random(300) < 0.4
    for scores in (rng.normal(size=300) + is_member, np.round(rng.normal(size=300) + is_member, 1)):
        assert roc_summary(scores, is_member)["auc"] == roc_auc_score(is_member, scores)


def test_members_are_the_positive_class():
    flipped = roc_summary(-SCORES, IS_MEMBER)
    assert flipped["auc"] == pytest.approx(1 / 12)


def test_threshold_from_one_set_applied_to_another():
    threshold = fit_threshold(SCORES, IS_MEMBER)
    # balanced accuracy: above 0.35 -> (3/3 + 3/4) / 2 = 0.875, the best; above 0.75 -> (2/3 + 1) / 2
    assert threshold == pytest.approx(0.35)
    point = operating_point(np.array([0.95, 0.5, 0.75, 0.1]), np.array([True, True, False, False]), threshold)
    assert point == {"asr": 0.75, "tpr": 1.0, "fpr": 0.5}


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 200), rng.normal(0, 1, 200)])
    labels = np.arange(400) < 200
    first = bootstrap_intervals(scores, labels, 0.5, resamples=200, seed=5)
    assert first == bootstrap_intervals(scores, labels, 0.5, resamples=200, seed=5)
    auc = roc_summary(scores, labels)["auc"]
    assert first["auc"][0] < auc < first["auc"][1]
    assert first["auc"][1] - first["auc"][0] < 0.15


def test_resampled_figures_are_roc_summarys_row_by_row():
    # Coarse scores, so that members tie with non-members and with each other, and untied ones; 250
    # non-members, so that 1% FPR allows 2 false positives and 0.1% none; and 3, so that every FPR is allowed.
    rng = np.random.default_rng(1)
    for decimals, (members, non_members) in [(0, (40, 250)), (1, (40, 250)), (None, (40, 250)), (2, (7, 3))]:
        member_scores = rng.normal(0.5, 1, (30, members))
        non_member_scores = rng.normal(0, 1, (30, non_members))
        if decimals is not None:
            member_scores, non_member_scores = np.round(member_scores, decimals), np.round(non_member_scores, decimals)
        batch = resampled_figures(member_scores, non_member_scores, threshold=0.25)
        for row in range(30):
            scores = np.concatenate([member_scores[row], non_member_scores[row]])
            labels = np.arange(len(scores)) < members
            one = {**roc_summary(scores, labels), "asr": operating_point(scores, labels, 0.25)["asr"]}
            assert batch.keys() == one.keys()
            for name, value in one.items():
                assert batch[name][row] == pytest.approx(value, abs=1e-12), (name, row)


def test_evaluate_attack_uses_the_shadow_threshold():
    result = evaluate_attack(SCORES, IS_MEMBER, SCORES - 10, IS_MEMBER, resamples=20, seed=0)
    # the shadow threshold (0.35) is far above every shifted target score: nobody predicted member
    assert result["threshold_fpr"] == 0.0 and result["threshold_tpr"] == 0.0
    assert result["asr"] == pytest.approx(4 / 7)
    assert result["auc"] == pytest.approx(11 / 12)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="both members and non-members"):
        roc_summary(np.ones(3), np.ones(3, bool))
    with pytest.raises(ValueError, match="record index 1 is NaN"):
        roc_summary(np.array([0.1, np.nan]), np.array([True, False]))


def reference_epsilon(false_positives, non_members, false_negatives, members, delta):
    """The bound written out again from scipy.stats.beta, independently of pfami.metrics."""
    from scipy.stats import beta

    def upper(errors, trials):
        return 1.0 if errors == trials else beta.ppf(0.95, errors + 1, trials - errors)

    fpr, fnr = upper(false_positives, non_members), upper(false_negatives, members)
    terms = [np.log((1 - delta - fnr) / fpr) if 1 - delta - fnr > 0 else 0.0,
             np.log((1 - delta - fpr) / fnr) if 1 - delta - fpr > 0 else 0.0]
    return max(0.0, *terms)


def test_clopper_pearson_upper_bound_is_the_binomial_quantile():
    from scipy.stats import binom

    # by hand: with no error in n trials the bound solves (1 - p)^n = 0.05
    assert clopper_pearson_upper(0, 200) == pytest.approx(1 - 0.05 ** (1 / 200), rel=1e-12)
    for errors, trials in ((0, 10), (3, 10), (17, 200), (199, 200)):
        upper = clopper_pearson_upper(errors, trials)
        assert errors / trials < upper < 1
        # the defining property: seeing this few errors has probability 5% at the bound
        assert binom.cdf(errors, trials, upper) == pytest.approx(0.05, rel=1e-9)
    assert clopper_pearson_upper(10, 10) == 1.0
    with pytest.raises(ValueError, match="errors <= trials"):
        clopper_pearson_upper(11, 10)


@pytest.mark.parametrize("counts", [(0, 200, 0, 200, 1e-5), (10, 200, 150, 200, 1e-5), (150, 200, 10, 200, 1e-3),
                                    (2, 50, 30, 40, 1e-2), (100, 200, 100, 200, 1e-5), (0, 1000, 990, 1000, 1e-6)])
def test_empirical_epsilon_against_scipy_beta(counts):
    expected = reference_epsilon(*counts)
    assert empirical_epsilon(*counts) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_empirical_epsilon_by_hand():
    # a chance-level test proves nothing
    assert empirical_epsilon(100, 200, 100, 200, 1e-5) == 0.0
    # a perfect test on 200 + 200 records: ln((1 - delta - u) / u) with u = 1 - 0.05^(1/200)
    upper = 1 - 0.05 ** (1 / 200)
    assert largest_provable_epsilon(200, 200, 1e-5) == pytest.approx(np.log((1 - 1e-5 - upper) / upper), rel=1e-9)
    assert 4.18 < largest_provable_epsilon(200, 200, 1e-5) < 4.20
    # the bound is symmetric in the two error kinds and grows as either error count falls
    assert empirical_epsilon(5, 200, 120, 200, 1e-5) == pytest.approx(empirical_epsilon(120, 200, 5, 200, 1e-5))
    assert empirical_epsilon(2, 200, 120, 200, 1e-5) > empirical_epsilon(5, 200, 120, 200, 1e-5) > 0
    with pytest.raises(ValueError, match="delta"):
        empirical_epsilon(0, 10, 0, 10, 0.0)


def test_evaluate_attack_counts_the_errors_at_the_shadow_threshold():
    target_scores = np.array([0.95, 0.5, 0.2, 0.75, 0.1, 0.05])
    target_is_member = np.array([True, True, True, False, False, False])
    result = evaluate_attack(SCORES, IS_MEMBER, target_scores, target_is_member, resamples=20, seed=0, delta=1e-3)
    # threshold 0.35 (fitted on the shadow scores): member 0.2 missed, non-member 0.75 taken
    assert (result["false_positives"], result["false_negatives"]) == (1, 1)
    assert result["eps_lb"] == pytest.approx(reference_epsilon(1, 3, 1, 3, 1e-3))
