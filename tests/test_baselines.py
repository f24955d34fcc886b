"""Baseline attacks on tiny models whose noise prediction is known in closed form.

Expected values are computed here independently of the library: scalar recursions in float64
on the schedule values, never by calling the library's DDIM step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pfami.attacks.baselines import (
    ddim_step,
    pia_attack,
    pia_queries,
    pian_attack,
    secmi_attack,
    secmi_queries,
    secmi_timesteps,
)
from pfami.attacks.loss import calibrated_loss_attack, calibrated_loss_attack_queries, loss_attack, loss_attack_queries

torch.set_num_threads(1)

T = 1000


@pytest.fixture(scope="module")
def abar_torch() -> torch.Tensor:
    # As diffusers' DDPMScheduler: linear betas 1e-4 .. 0.02 over 1000 steps, float32.
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


@pytest.fixture(scope="module")
def abar(abar_torch) -> np.ndarray:
    return abar_torch.double().numpy()


def coeffs(abar: np.ndarray, t: int) -> tuple[float, float]:
    return math.sqrt(abar[t]), math.sqrt(1.0 - abar[t])


def make_images(n: int = 5, shape=(2, 4, 4), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g, dtype=torch.float32) * 2 - 1


class Counting:
    """Wraps an eps_model and records every call: (batch size, timesteps)."""

    def __init__(self, model):
        self.model = model
        self.calls: list[tuple[int, list[int]]] = []

    def __call__(self, x, t):
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        assert x.dtype == torch.float32
        self.calls.append((x.shape[0], t.tolist()))
        return self.model(x, t)

    def evaluations(self) -> int:
        return sum(b for b, _ in self.calls)


def linear_model(c: float):
    return lambda x, t: c * x


def constant_model(e: torch.Tensor):
    return lambda x, t: e.expand_as(x).clone()


def nonlinear_model():
    """A fixed, per-record, t-dependent nonlinear predictor (stands in for a network)."""
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(2, 2, 3, 3, generator=g) * 0.3

    def model(x, t):
        scale = (t.float() / T).view(-1, 1, 1, 1)
        return torch.tanh(torch.nn.functional.conv2d(x, weight, padding=1) * (1 + scale)) + 0.1 * x

    return model


def oracle_model(training: torch.Tensor, abar: np.ndarray):
    """The exact optimal noise predictor for the empirical distribution of ``training``:
    eps*(x, t) = (x - sqrt(abar_t) E[x0 | x_t = x]) / sqrt(1 - abar_t), posterior over the points."""
    train = training.double().flatten(1)  # [K, D]
    abar_t = torch.as_tensor(abar, dtype=torch.float64)

    def model(x, t):
        a = abar_t[t].sqrt().view(-1, 1)
        s = (1 - abar_t[t]).sqrt().view(-1, 1)
        flat = x.double().flatten(1)  # [B, D]
        d2 = ((flat[:, None, :] - a[:, :, None] * train[None]) ** 2).sum(-1)  # [B, K]
        w = torch.softmax(-d2 / (2 * s**2), dim=1)
        mean_x0 = w @ train
        return ((flat - a * mean_x0) / s).view_as(x).float()

    return model


# ----------------------------------------------------------------------------- loss attacks


def test_loss_attack_exact_and_sign():
    L = np.array(
        [
            [[0.1, 9.0], [0.3, 9.0]],  # mean 0.2 (the perturbed column must be ignored)
            [[0.5, 0.0], [0.7, 0.0]],  # mean 0.6
        ]
    )
    np.testing.assert_allclose(loss_attack(L), [-0.2, -0.6])
    assert loss_attack(L)[0] > loss_attack(L)[1]  # lower loss = more likely member
    assert loss_attack_queries(L.shape[1]) == {"target": 2, "reference": 0}


def test_calibrated_loss_attack_exact_and_sign():
    target = np.array([[[0.2], [0.4]], [[0.2], [0.4]]])
    reference = np.array([[[0.5], [0.7]], [[0.1], [0.1]]])
    # record 0: 0.3 - 0.6 = -0.3 -> score 0.3; record 1: 0.3 - 0.1 = 0.2 -> score -0.2
    np.testing.assert_allclose(calibrated_loss_attack(target, reference), [0.3, -0.2])
    assert calibrated_loss_attack_queries(2) == {"target": 2, "reference": 2}
    with pytest.raises(ValueError):
        calibrated_loss_attack(target, reference[:1])
    with pytest.raises(ValueError):
        loss_attack(np.zeros((2, 3)))


# ----------------------------------------------------------------------------- DDIM step


def test_ddim_step_linear_model_closed_form(abar, abar_torch):
    c = 0.7
    x = make_images(3)
    for t_from, t_to in [(0, 10), (90, 100), (100, 90), (500, 20)]:
        af, sf = coeffs(abar, t_from)
        at, st = coeffs(abar, t_to)
        factor = at * (1 - sf * c) / af + st * c
        out = ddim_step(linear_model(c), x, t_from, t_to, abar_torch)
        torch.testing.assert_close(out, x * factor, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- SecMI


def test_secmi_timesteps_and_queries():
    grid, t, t_top = secmi_timesteps(100, 10)
    assert grid == list(range(0, 100, 10)) and t == 90 and t_top == 100
    assert secmi_queries() == {"target": 11, "reference": 0}
    assert secmi_queries(110, 10) == {"target": 12, "reference": 0}
    assert secmi_queries(20, 5) == {"target": 5, "reference": 0}
    for bad in [(95, 10), (0, 10), (10, 0)]:
        with pytest.raises(ValueError):
            secmi_timesteps(*bad)


@pytest.mark.parametrize("t_sec,k", [(100, 10), (60, 20)])
def test_secmi_calls_timesteps_and_counts(abar_torch, t_sec, k):
    images = make_images(4)
    model = Counting(nonlinear_model())
    secmi_attack(model, images, abar_torch, t_sec=t_sec, k=k, batch_size=4)
    expected_t = list(range(0, t_sec + 1, k))  # eps at 0, k, ..., t_sec - k (up) and t_sec (down)
    assert [ts[0] for _, ts in model.calls] == expected_t
    assert all(len(set(ts)) == 1 for _, ts in model.calls)
    assert model.evaluations() / len(images) == secmi_queries(t_sec, k)["target"]


def test_secmi_linear_model_closed_form(abar, abar_torch):
    # eps = c(t) x with c(t) = 0.2 + 10 t / T: every DDIM step scales x by a known factor, and
    # the t-dependence makes the round trip t -> t + k -> t inexact (non-zero t-error).
    def c(t):
        return 0.2 + 10.0 * t / T

    images = make_images(5)

    def factor(t_from, t_to):
        af, sf = coeffs(abar, t_from)
        at, st = coeffs(abar, t_to)
        return at * (1 - sf * c(t_from)) / af + st * c(t_from)

    inv = np.prod([factor(s, s + 10) for s in range(0, 90, 10)])  # x~_90 = inv * x_0
    round_trip = factor(90, 100) * factor(100, 90)  # x^_90 = round_trip * x~_90
    x0 = images.double().numpy()
    err_img = np.abs((round_trip - 1) * inv * x0)
    expected = (err_img**2).reshape(len(x0), -1).sum(1)
    assert np.all(expected > 1e-5)  # non-trivial

    model = lambda x, t: (0.2 + 10.0 * t.float() / T).view(-1, 1, 1, 1) * x  # noqa: E731
    res = secmi_attack(model, images, abar_torch)
    np.testing.assert_allclose(res.errors, expected, rtol=1e-3)
    np.testing.assert_allclose(res.scores, -expected, rtol=1e-3)
    np.testing.assert_allclose(res.error_images, err_img, rtol=1e-3, atol=1e-6)
    assert res.error_images.dtype == np.float32 and res.error_images.shape == tuple(images.shape)
    assert res.scores.shape == (5,) and res.errors.dtype == np.float64


def test_secmi_constant_prediction_inverts_exactly(abar_torch):
    # A t-independent noise prediction makes the DDIM round trip exact: zero t-error.
    e = make_images(1, seed=3)[0]
    res = secmi_attack(constant_model(e), make_images(4), abar_torch)
    np.testing.assert_allclose(res.errors, 0.0, atol=1e-9)
    np.testing.assert_allclose(res.error_images, 0.0, atol=1e-5)


def test_secmi_zero_model_closed_form(abar, abar_torch):
    # eps = 0: each step scales by sqrt(abar_to / abar_from); the round trip is exact.
    images = make_images(3)
    res = secmi_attack(linear_model(0.0), images, abar_torch)
    np.testing.assert_allclose(res.errors, 0.0, atol=1e-10)


# ----------------------------------------------------------------------------- PIA / PIAN


def test_pia_linear_model_closed_form(abar, abar_torch):
    c, t = 0.8, 200
    images = make_images(5)
    a, s = coeffs(abar, t)
    x0 = images.double().numpy()
    # eps0 = c x0; x_t = (a + s c) x0; eps_t = c (a + s c) x0
    diff = c * x0 * (1 - a - s * c)
    expected = -(diff**4).reshape(5, -1).sum(1)
    assert np.all(np.abs(expected) > 1e-4)
    np.testing.assert_allclose(pia_attack(linear_model(c), images, abar_torch, t=t), expected, rtol=1e-4)
    # general p: the l_p norm to the power p
    expected_p2 = -(diff**2).reshape(5, -1).sum(1)
    np.testing.assert_allclose(pia_attack(linear_model(c), images, abar_torch, t=t, p=2), expected_p2, rtol=1e-4)


def test_pia_trivial_models_score_zero(abar_torch):
    images = make_images(3)
    np.testing.assert_allclose(pia_attack(linear_model(0.0), images, abar_torch), 0.0)
    e = make_images(1, seed=4)[0]
    np.testing.assert_allclose(pia_attack(constant_model(e), images, abar_torch), 0.0, atol=1e-12)


@pytest.mark.parametrize("how", ["mean_abs", "standardise"])
def test_pian_linear_model_closed_form(abar, abar_torch, how):
    c, t = -0.6, 300
    images = make_images(4)
    a, s = coeffs(abar, t)
    x0 = images.double().numpy().reshape(4, -1)
    eps0 = c * x0
    if how == "mean_abs":
        eps0n = eps0 * math.sqrt(2 / math.pi) / np.abs(eps0).mean(1, keepdims=True)
        assert np.allclose(np.abs(eps0n).mean(1), math.sqrt(2 / math.pi))
    else:
        eps0n = (eps0 - eps0.mean(1, keepdims=True)) / eps0.std(1, keepdims=True)
    x_t = a * x0 + s * eps0n
    expected = -((eps0n - c * x_t) ** 4).sum(1)
    got = pian_attack(linear_model(c), images, abar_torch, t=t, normalise=how)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # PIAN differs from PIA here
    assert not np.allclose(got, pia_attack(linear_model(c), images, abar_torch, t=t))
    with pytest.raises(ValueError):
        pian_attack(linear_model(c), images, abar_torch, normalise="nope")


@pytest.mark.parametrize("attack", [pia_attack, pian_attack])
def test_pia_calls_and_counts(abar_torch, attack):
    images = make_images(5)
    model = Counting(nonlinear_model())
    attack(model, images, abar_torch, t=200, batch_size=5)
    assert [ts[0] for _, ts in model.calls] == [0, 200]
    assert model.evaluations() / len(images) == pia_queries()["target"] == 2
    assert pia_queries() == {"target": 2, "reference": 0}


# ----------------------------------------------------------------------------- sign convention


def memoriser_model(member: torch.Tensor, abar: np.ndarray, c: float = 3.0):
    """Exact noise predictor on the diffusion trajectory of one training record ``member``
    (eps = D / sqrt(1 - abar_t) with D = x - sqrt(abar_t) member) plus a t-dependent error that
    grows with the distance D from that trajectory."""
    abar_t = torch.as_tensor(abar, dtype=torch.float64)

    def model(x, t):
        a = abar_t[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - abar_t[t]).sqrt().view(-1, 1, 1, 1)
        d = x.double() - a * member.double()
        return (d / s + c * (t.double() / T).view(-1, 1, 1, 1) * torch.tanh(d)).float()

    return model


def _scores(name, model, records, abar_torch):
    if name == "secmi":
        return secmi_attack(model, records, abar_torch).scores
    if name == "pia":
        return pia_attack(model, records, abar_torch)
    return pian_attack(model, records, abar_torch)


@pytest.mark.parametrize("name", ["secmi", "pia", "pian"])
def test_memorised_record_scores_higher(abar, abar_torch, name):
    g = torch.Generator().manual_seed(7)
    member = torch.rand((1, 2, 4, 4), generator=g) * 1.6 - 0.8
    nonmembers = member + 0.3 * torch.randn((4, 2, 4, 4), generator=g)
    scores = _scores(name, memoriser_model(member[0], abar), torch.cat([member, nonmembers]), abar_torch)
    assert scores[0] > 100 * scores[1:].max(), scores  # all scores are <= 0


@pytest.mark.parametrize("name", ["pia", "pian"])
def test_oracle_training_points_score_higher(abar, abar_torch, name):
    # The exact optimal predictor for a 3-point training set: its training points are members.
    g = torch.Generator().manual_seed(7)
    members = torch.rand((3, 1, 4, 4), generator=g) * 1.6 - 0.8
    nonmembers = torch.rand((3, 1, 4, 4), generator=g) * 1.6 - 0.8
    scores = _scores(name, oracle_model(members, abar), torch.cat([members, nonmembers]), abar_torch)
    assert scores[:3].min() > 1000 * scores[3:].max(), scores


@pytest.mark.parametrize("name", ["secmi", "pia"])
def test_loss_like_sign_on_scaled_records(abar_torch, name):
    # With eps = c(t) x every error is proportional to a power of the record's scale: the smaller
    # copy is the one the model reconstructs better, and must score higher. (Not PIAN: its
    # rescaling of eps0 removes the record's scale.)
    base = make_images(1)
    records = torch.cat([0.2 * base, base])
    model = lambda x, t: (0.2 + 10.0 * t.float() / T).view(-1, 1, 1, 1) * x  # noqa: E731
    scores = _scores(name, model, records, abar_torch)
    assert scores[0] > scores[1], scores


# ----------------------------------------------------------------------------- batching


@pytest.mark.parametrize("name", ["secmi", "pia", "pian"])
def test_batch_size_invariance(abar_torch, name):
    images = make_images(7)
    model = nonlinear_model()
    outs = []
    for bs in (1, 3, 7, 100):
        counted = Counting(model)
        if name == "secmi":
            res = secmi_attack(counted, images, abar_torch, batch_size=bs)
            outs.append((res.scores, res.error_images))
            per_record = secmi_queries()["target"]
        else:
            attack = pia_attack if name == "pia" else pian_attack
            outs.append((attack(counted, images, abar_torch, batch_size=bs), None))
            per_record = pia_queries()["target"]
        assert counted.evaluations() == per_record * len(images)
        assert max(b for b, _ in counted.calls) == min(bs, len(images))
    for scores, err in outs[1:]:
        np.testing.assert_allclose(scores, outs[0][0], rtol=1e-5, atol=1e-7)
        if err is not None:
            np.testing.assert_allclose(err, outs[0][1], rtol=1e-5, atol=1e-6)


def test_input_validation(abar_torch):
    images = make_images(2)
    model = linear_model(0.1)
    with pytest.raises(ValueError):
        pia_attack(model, images, abar_torch, t=T)
    with pytest.raises(ValueError):
        pia_attack(model, images, abar_torch, batch_size=0)
    with pytest.raises(ValueError):
        pia_attack(model, images[0], abar_torch)
    with pytest.raises(ValueError):
        secmi_attack(model, images, abar_torch, t_sec=T, k=10)
    with pytest.raises(ValueError):
        pia_attack(lambda x, t: x[:, :1], images, abar_torch)
