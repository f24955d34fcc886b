import numpy as np
import pytest

from pfami.fluctuation import calibrated_fluctuation, relative_fluctuation


def test_relative_fluctuation_matches_a_hand_computation():
    # one record, two timesteps, own loss then two neighbours
    losses = np.array([[[0.5, 0.6, 1.0], [0.2, 0.1, 0.3]]], np.float32)
    ratio, clamped = relative_fluctuation(losses)
    np.testing.assert_allclose(ratio[0], [[0.2, 1.0], [-0.5, 0.5]], rtol=1e-6)
    assert clamped.tolist() == [False]


def test_calibrated_fluctuation_subtracts_the_reference_ratio():
    target = np.array([[[1.0, 2.0]], [[2.0, 2.0]]], np.float32)  # r = 1, 0
    reference = np.array([[[1.0, 1.5]], [[4.0, 2.0]]], np.float32)  # r = 0.5, -0.5
    fluctuation, clamped = calibrated_fluctuation(target, reference)
    np.testing.assert_allclose(fluctuation[:, 0, 0], [0.5, 0.5])
    assert not clamped.any()


def test_tiny_losses_are_clamped_and_counted_not_infinite():
    target = np.array([[[0.0, 0.1]], [[1.0, 1.1]]], np.float32)
    reference = np.array([[[1.0, 1.0]], [[1.0, 1.0]]], np.float32)
    fluctuation, clamped = calibrated_fluctuation(target, reference, min_loss=1e-3)
    assert np.isfinite(fluctuation).all()
    np.testing.assert_allclose(fluctuation[0, 0, 0], 0.1 / 1e-3, rtol=1e-5)
    assert clamped.tolist() == [True, False]


def test_bad_loss_tensors_are_refused():
    with pytest.raises(ValueError, match="NaN or infinite values \\(first at record 1\\)"):
        relative_fluctuation(np.array([[[1.0, 1.0]], [[np.nan, 1.0]]]))
    with pytest.raises(ValueError, match="differ in shape"):
        calibrated_fluctuation(np.ones((2, 1, 3)), np.ones((2, 1, 2)))
