"""The perturbation mechanisms' names, the paper's strength ranges and the checks on them.

Kept free of torch so that the workflow (Snakemake parses the config and plans the ablation
jobs with these) starts in a fraction of the time; the image functions are in ``pfami.perturb``.
"""

from __future__ import annotations

import math

import numpy as np

# The paper's sweep for each mechanism, (first, last) strength; ``default_strengths`` spaces
# ``count`` strengths along it. Downsample sizes are for 64 px images (see default_strengths).
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "crop": (0.95, 0.70),
    "crop_pixel": (0.95, 0.70),
    "brightness": (2.0, 0.1),
    "contrast": (2.0, 0.1),
    "saturation": (2.0, 0.1),
    "hue": (0.5, -0.5),
    "rotation": (0.0, 90.0),
    "perspective": (0.0, 1.0),
    "downsample": (32.0, 4.0),
}
MECHANISM_NAMES: tuple[str, ...] = tuple(DEFAULT_RANGES)

# Mechanisms that only make sense on colour images.
COLOUR_ONLY: frozenset[str] = frozenset({"saturation", "hue"})

# The image size the paper's downsample sizes refer to.
DOWNSAMPLE_REFERENCE_SIZE = 64

# The strength at which each mechanism returns its input unchanged.
NEUTRAL_STRENGTHS: dict[str, float] = {
    "crop": 1.0,
    "crop_pixel": 1.0,
    "brightness": 1.0,
    "contrast": 1.0,
    "saturation": 1.0,
    "hue": 0.0,
    "rotation": 0.0,
    "perspective": 0.0,
    "downsample": math.inf,
}


def check_mechanism(mechanism: str, channels: int) -> None:
    """Refuse an unknown mechanism, or one that means nothing for the data (hue on grey)."""
    if mechanism not in DEFAULT_RANGES:
        raise ValueError(
            f"perturbation.mechanism: unknown mechanism {mechanism!r}; choose one of {sorted(MECHANISM_NAMES)}"
        )
    if mechanism in COLOUR_ONLY and channels != 3:
        raise ValueError(
            f"perturbation.mechanism: {mechanism!r} needs RGB images but the data has {channels} channel(s); "
            "choose another mechanism"
        )


def neutral_strength(mechanism: str, image_size: int | None = None) -> float:
    """The identity strength of ``mechanism``; for downsample the image size (inf if not given)."""
    check_mechanism(mechanism, 3)
    if mechanism == "downsample" and image_size is not None:
        return float(image_size)
    return NEUTRAL_STRENGTHS[mechanism]


def default_strengths(
    mechanism: str, count: int = 10, image_size: int | None = None, skip_neutral: bool = True
) -> list[float]:
    """``count`` evenly spaced strengths along the paper's range for ``mechanism``.

    Where the range starts at the identity (rotation 0, perspective 0) that useless neighbour is
    left out with ``skip_neutral``: the ``count`` strengths are the last ``count`` of
    ``count + 1`` evenly spaced ones. Downsample gives whole pixel sizes; the paper's 32 -> 4
    is for 64 px images, so with ``image_size`` the range is scaled by ``image_size / 64``
    (16 px: 8 -> 1) before rounding; on small images neighbouring sizes may then repeat.
    """
    check_mechanism(mechanism, 3)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    first, last = DEFAULT_RANGES[mechanism]
    if mechanism == "downsample" and image_size is not None:
        first, last = (first * image_size / DOWNSAMPLE_REFERENCE_SIZE, last * image_size / DOWNSAMPLE_REFERENCE_SIZE)
    if skip_neutral and first == NEUTRAL_STRENGTHS[mechanism]:
        values = np.linspace(first, last, count + 1)[1:].tolist()
    else:
        values = np.linspace(first, last, count).tolist()
    if mechanism == "downsample":
        return [float(max(1, math.floor(value + 0.5))) for value in values]
    return values
