"""The network queries of the SecMI and PIA baselines on one model and one role's records.

The PFAMI loss tensor holds noisy-input losses at fixed timesteps; SecMI needs a deterministic
DDIM round trip and PIA the model's own t = 0 noise prediction, so these baselines query the
model themselves. A *family* is the set of attacks that read one stored query file:

* ``secmi``: SecMI_stat (the t-error) and SecMI_NNs (the error images) share one round trip,
  so they must use the same ``t_sec`` and ``k``;
* ``pia``: PIA and PIAN, each with its own ``t`` (PIAN's rescaled noise changes its second call,
  so the two share no evaluation).

Queries are deterministic (no noise is drawn), and the network evaluations actually spent per
record are counted and stored beside the results, so the cost the tables report can be checked.
"""

from __future__ import annotations

import numpy as np
import torch

from pfami.attacks.baselines import EpsModel, pia_attack, pian_attack, secmi_attack
# The attacks' settings, checks and costs are torch-free, in pfami.config (the workflow reads them at start-up).
from pfami.config import FAMILIES


class CountingPredictor:
    """Wraps a noise predictor and counts the network inputs it has evaluated."""

    def __init__(self, eps_model: EpsModel):
        self.eps_model = eps_model
        self.evaluations = 0

    def __call__(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        self.evaluations += noisy.shape[0]
        return self.eps_model(noisy, timesteps)


def query_family(family: str, settings: dict[str, dict], eps_model: EpsModel, images: torch.Tensor,
                 alphas_cumprod, batch_size: int, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Run the family's queries for the attacks in ``settings`` (from :func:`family_settings`).

    Returns arrays keyed by what the attacks read: ``secmi_errors`` [R] and
    ``secmi_error_images`` [R, C, H, W]; ``pia_scores`` / ``pian_scores`` [R] (higher = member);
    and ``{attack}_evaluations``, the network evaluations per record actually spent."""
    if not settings:
        raise ValueError(f"no attack of the {family} family is configured")
    record_count = images.shape[0]
    arrays: dict[str, np.ndarray] = {}
    if family == "secmi":
        round_trips = {(s["t_sec"], s["k"]) for s in settings.values()}
        if len(round_trips) != 1:
            raise ValueError(f"SecMI attacks ask for different round trips {sorted(round_trips)}; use one t_sec and k")
        (t_sec, k), = round_trips
        counter = CountingPredictor(eps_model)
        result = secmi_attack(counter, images, alphas_cumprod, t_sec=t_sec, k=k, batch_size=batch_size, device=device)
        arrays["secmi_errors"], arrays["secmi_error_images"] = result.errors, result.error_images
        for attack in settings:
            arrays[f"{attack}_evaluations"] = np.array(counter.evaluations / record_count)
    elif family == "pia":
        for attack, attack_settings in settings.items():
            counter = CountingPredictor(eps_model)
            run = pia_attack if attack == "pia" else pian_attack
            arrays[f"{attack}_scores"] = run(counter, images, alphas_cumprod, t=attack_settings["t"],
                                             batch_size=batch_size, device=device)
            arrays[f"{attack}_evaluations"] = np.array(counter.evaluations / record_count)
    else:
        raise ValueError(f"unknown baseline family {family!r}; choose from {list(FAMILIES)}")
    return arrays
