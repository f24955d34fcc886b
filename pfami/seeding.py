"""Deterministic seeds derived from the experiment seed and a purpose's name."""

from __future__ import annotations

import hashlib

import numpy as np


def stable_key(name: str) -> int:
    """A 32-bit integer for a name, the same on every machine and run (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def derived_seed(seed: int, *names: str) -> int:
    """A seed for one purpose (e.g. training the shadow model) derived from the experiment seed."""
    return int(np.random.SeedSequence([seed, *map(stable_key, names)]).generate_state(1)[0])


def classifier_seeds(seed: int, count: int) -> list[int]:
    """Seeds of ``count`` membership classifiers: ``seed`` itself first, so that a one-classifier
    attack and the first member of an ensemble are the same classifier."""
    return [seed] + [derived_seed(seed, "classifier", str(index)) for index in range(1, count)]
