"""The blind baseline (pfami/blind_baseline.py): image statistics, cross-fitting, and what it finds."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from pfami.attacks.learned import ConvexClassifier
from pfami.blind_baseline import _block_means, blind_baseline_scores, cross_fitted_scores, image_statistics
from pfami.data import load_digits_images
from pfami.metrics import roc_summary


def test_block_means_average_equal_blocks_and_near_equal_ones():
    image = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_allclose(_block_means(image, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    # 5 px in 2 blocks: rows/columns [0, 2) and [2, 5)
    image = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    np.testing.assert_allclose(_block_means(image, 2)[0, 0, 0, 0], image[0, 0, :2, :2].mean())
    np.testing.assert_allclose(_block_means(image, 2)[0, 0, 1, 1], image[0, 0, 2:, 2:].mean())


def test_statistics_have_the_same_length_whatever_the_image_size():
    rng = np.random.default_rng(0)
    small, large = rng.uniform(-1, 1, (3, 3, 16, 16)), rng.uniform(-1, 1, (3, 3, 64, 64))
    assert image_statistics(small).shape == image_statistics(large).shape == (3, 3 * (64 + 16 + 4))
    constant = image_statistics(np.full((1, 1, 16, 16), -1.0))[0]
    assert constant[64] == 1.0 and constant[65:80].sum() == 0  # every pixel in the first histogram bin
    assert constant[-2:].tolist() == [0.0, 0.0]  # no neighbour differences


def _digits(low: np.ndarray, high: np.ndarray):
    images = load_digits_images(16)
    return images[np.concatenate([low, high])], np.r_[np.ones(len(low), bool), np.zeros(len(high), bool)]


def test_it_tells_digits_0_to_4_from_5_to_9_and_not_two_random_halves():
    labels = load_digits().target
    images, is_member = _digits(np.flatnonzero(labels < 5)[:40], np.flatnonzero(labels >= 5)[:40])
    assert roc_summary(blind_baseline_scores(images, is_member, seed=0), is_member)["auc"] > 0.9
    order = np.random.default_rng(5).permutation(len(labels))
    images, is_member = _digits(order[:100], order[100:200])
    assert abs(roc_summary(blind_baseline_scores(images, is_member, seed=0), is_member)["auc"] - 0.5) < 0.12


def test_scores_are_out_of_fold_and_fixed_by_the_seed():
    rng = np.random.default_rng(1)
    features, is_member = rng.normal(size=(30, 4)), np.arange(30) < 15
    first = cross_fitted_scores(features, is_member, seed=3)
    assert np.array_equal(first, cross_fitted_scores(features, is_member, seed=3))
    assert not np.array_equal(first, cross_fitted_scores(features, is_member, seed=4))
    # Noise that an SVM fitted on every record would memorise (in-sample AUC 1): out of fold, nothing.
    noise, labels = rng.normal(size=(60, 50)), np.arange(60) % 2 == 0
    assert roc_summary(cross_fitted_scores(noise, labels, seed=0, repeats=1, folds=60 // 2), labels)["auc"] < 0.75
    model = ConvexClassifier("svm", noise, 1.0)
    in_sample = model.fit_scores(labels, np.ones(60, bool), model.rows())
    assert roc_summary(in_sample, labels)["auc"] == 1.0
    with pytest.raises(ValueError, match="at least 2 members and 2 non-members"):
        cross_fitted_scores(features[:16], np.arange(16) < 15, seed=0)
