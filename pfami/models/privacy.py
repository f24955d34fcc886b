"""DP-SGD training with Opacus: the accounting of a private recipe and its optimiser step.

``training.privacy: {epsilon, delta, max_grad_norm}`` turns a role's training into DP-SGD
(Abadi et al. 2016): every step draws a Poisson sample of the members (each one independently with
probability q = batch_size / members, so the batch size varies around ``batch_size``), clips each
record's gradient to L2 norm ``max_grad_norm``, sums them, adds Gaussian noise of standard deviation
noise_multiplier x max_grad_norm and divides by the expected batch size; AdamW and the learning-rate
schedule then act on that noisy mean (post-processing, which costs no privacy).

The noise multiplier is the smallest that Opacus' PRV accountant (privacy random variables, Gopi et
al. 2021; tighter than RDP at these step counts) finds for (epsilon, delta) after ``training.steps``
steps at sampling rate q; the epsilon it then certifies is recorded beside the target. The guarantee
is record-level, add/remove adjacency, for the model's members; it covers every step, whatever the
loss, since each record's whole contribution to a step is clipped.

Opacus' per-sample gradients come from its hooks (``GradSampleModule``); its ``DPOptimizer`` clips,
adds the noise (from a generator of ours, saved with the resumable state) and averages. Every model
family of this pipeline has only layers Opacus supports (convolutions, transposed convolutions,
linear layers, GroupNorm); ``check_private_model`` refuses any other before training starts.
"""

from __future__ import annotations

from functools import lru_cache

import torch

ACCOUNTANT = "prv"
# Opacus' tolerance for the bisection on the noise multiplier: the certified epsilon lies in
# [epsilon - tolerance, epsilon].
EPSILON_TOLERANCE = 0.01


def sampling_rate(batch_size: int, members: int) -> float:
    return batch_size / members


def privacy_accounting(privacy: dict, batch_size: int, members: int, steps: int) -> dict:
    """The DP recipe of a training run: the noise multiplier for ``privacy`` (epsilon, delta,
    max_grad_norm) at ``steps`` Poisson-sampled steps of rate ``batch_size / members``, and the epsilon
    the accountant certifies for it. Deterministic: the same settings give the same record."""
    rate = sampling_rate(batch_size, members)
    noise_multiplier, certified = _noise_multiplier(float(privacy["epsilon"]), float(privacy["delta"]), rate, steps)
    return {"epsilon": float(privacy["epsilon"]), "delta": float(privacy["delta"]),
            "max_grad_norm": float(privacy["max_grad_norm"]), "noise_multiplier": float(noise_multiplier),
            "sampling_rate": rate, "expected_batch_size": batch_size, "members": members, "steps": steps,
            "accountant": ACCOUNTANT, "certified_epsilon": certified, "sampling": "poisson"}


@lru_cache(maxsize=32)
def _noise_multiplier(epsilon: float, delta: float, rate: float, steps: int) -> tuple[float, float]:
    """(noise multiplier, certified epsilon); seconds of PRV accounting, so kept for the process."""
    from opacus.accountants import create_accountant
    from opacus.accountants.utils import get_noise_multiplier

    noise_multiplier = get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=rate, steps=steps,
                                            accountant=ACCOUNTANT, epsilon_tolerance=EPSILON_TOLERANCE)
    accountant = create_accountant(ACCOUNTANT)
    accountant.history = [(noise_multiplier, rate, steps)]
    return float(noise_multiplier), float(accountant.get_epsilon(delta=delta))


def check_private_model(model: torch.nn.Module) -> None:
    """Refuse, in one line naming the key, a network with a layer Opacus cannot train privately."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        first = str(errors[0]).strip().splitlines()[0]
        raise ValueError(f"training.privacy: the model has {len(errors)} layer(s) Opacus cannot train with DP-SGD "
                         f"(first: {first}); remove training.privacy or change model")


def private_training(model: torch.nn.Module, optimiser: torch.optim.Optimizer, accounting: dict,
                     noise_generator: torch.Generator):
    """(per-sample-gradient wrapper of ``model``, DP optimiser around ``optimiser``)."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    check_private_model(model)
    wrapped = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    private = DPOptimizer(optimiser, noise_multiplier=accounting["noise_multiplier"],
                          max_grad_norm=accounting["max_grad_norm"],
                          expected_batch_size=accounting["expected_batch_size"], loss_reduction="mean",
                          generator=noise_generator)
    return wrapped, private


def poisson_batch(record_count: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of the records in one Poisson sample: each record independently with probability ``rate``."""
    return torch.nonzero(torch.rand(record_count, generator=generator) < rate).flatten()


def empty_batch_gradients(model: torch.nn.Module) -> None:
    """An empty Poisson sample: no record contributes, the step is the noise alone (as DP-SGD's analysis
    assumes), so each parameter gets an empty per-sample gradient for the optimiser to clip and noise."""
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad_sample = torch.zeros((0, *parameter.shape), dtype=parameter.dtype,
                                                device=parameter.device)
