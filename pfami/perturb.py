"""Neighbour generation: deterministic perturbations of a batch of images.

Every mechanism is a function ``(images, strength) -> images`` on float tensors of shape
[B, C, H, W] in [-1, 1]; it keeps shape and value range. ``make_neighbours`` applies one
mechanism at every configured strength.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def centre_crop(images: torch.Tensor, strength: float, pixel_aligned: bool = False) -> torch.Tensor:
    """Crop the centre ``strength`` fraction of each side and resize back (bilinear).

    ``pixel_aligned=True`` crops ``int(S * strength)`` whole pixels as the authors do; the
    default crops a box of side exactly ``S * strength`` (sub-pixel), so that on small images
    (16 px) every strength gives a different neighbour instead of repeating whole-pixel crops.
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"crop strength must be in (0, 1], got {strength}")
    height, width = images.shape[-2:]
    if pixel_aligned:
        crop_h, crop_w = int(height * strength), int(width * strength)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        cropped = images[..., top : top + crop_h, left : left + crop_w]
        return F.interpolate(cropped, size=(height, width), mode="bilinear", align_corners=False)
    # A zoom about the centre by 1/strength is exactly a centre crop of side S*strength
    # followed by a bilinear resize to S (align_corners=False convention).
    theta = torch.tensor([[strength, 0.0, 0.0], [0.0, strength, 0.0]], dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pixel_aligned_crop(images: torch.Tensor, strength: float) -> torch.Tensor:
    """The authors' crop: ``int(S * strength)`` pixels, resized back to S."""
    return centre_crop(images, strength, pixel_aligned=True)


MECHANISMS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "crop": centre_crop,
    "crop_pixel": pixel_aligned_crop,
}

# Mechanisms that only make sense on colour images.
COLOUR_ONLY: frozenset[str] = frozenset()


def check_mechanism(mechanism: str, channels: int) -> None:
    """Refuse an unknown mechanism, or one that means nothing for the data (hue on grey)."""
    if mechanism not in MECHANISMS:
        raise ValueError(
            f"perturbation.mechanism: unknown mechanism {mechanism!r}; choose one of {sorted(MECHANISMS)}"
        )
    if mechanism in COLOUR_ONLY and channels != 3:
        raise ValueError(
            f"perturbation.mechanism: {mechanism!r} needs RGB images but the data has {channels} channel(s); "
            "choose another mechanism"
        )


def make_neighbours(images: torch.Tensor, mechanism: str, strengths: Sequence[float]) -> torch.Tensor:
    """Stack the records and their neighbours: [B, 1 + N, C, H, W], index 0 the record itself."""
    check_mechanism(mechanism, images.shape[1])
    perturb = MECHANISMS[mechanism]
    neighbours = [images] + [perturb(images, float(strength)).clamp(-1.0, 1.0) for strength in strengths]
    return torch.stack(neighbours, dim=1)
