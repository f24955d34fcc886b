"""Neighbour generation: deterministic perturbations of a batch of images.

Every mechanism is a function ``(images, strength) -> images`` on float tensors of shape
[B, C, H, W] in [-1, 1]; it keeps shape and value range. ``make_neighbours`` applies one
mechanism at every configured strength.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from pfami.mechanisms import (  # noqa: F401  (re-exported: the mechanisms' settings live there, torch-free)
    COLOUR_ONLY, DEFAULT_RANGES, MECHANISM_NAMES, NEUTRAL_STRENGTHS, check_mechanism, default_strengths,
    neutral_strength)


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
    # A zoom about the centre by 1/strength is a centre crop of side S*strength followed by a
    # bilinear resize to S (align_corners=False convention). When the crop is whole pixels it
    # equals the pixel-aligned crop except on the outermost ring of output pixels, where the
    # zoom blends in the real pixels just outside the box and the resize repeats its edge.
    theta = torch.tensor([[strength, 0.0, 0.0], [0.0, strength, 0.0]], dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pixel_aligned_crop(images: torch.Tensor, strength: float) -> torch.Tensor:
    """The authors' crop: ``int(S * strength)`` pixels, resized back to S."""
    return centre_crop(images, strength, pixel_aligned=True)


# --- pixel-space helpers -------------------------------------------------------------------
# The photometric mechanisms work in [0, 1] pixel space, as torchvision does on the authors'
# images, so that clamping (e.g. brightness 2 saturating highlights) happens at the same place.

# ITU-R BT.601 luma weights, the usual grey-level definition for RGB.
_LUMA = (0.299, 0.587, 0.114)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return (images + 1.0) * 0.5


def _from_unit(unit: torch.Tensor) -> torch.Tensor:
    return (unit.clamp(0.0, 1.0) * 2.0 - 1.0).clamp(-1.0, 1.0)


def _grey(unit: torch.Tensor) -> torch.Tensor:
    """Grey level [B, 1, H, W] of images in [0, 1]; a grey image is its own grey level."""
    if unit.shape[1] == 1:
        return unit
    if unit.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {unit.shape[1]}")
    weights = torch.tensor(_LUMA, dtype=unit.dtype, device=unit.device).view(1, 3, 1, 1)
    return (unit * weights).sum(dim=1, keepdim=True)


def _require_rgb(images: torch.Tensor, mechanism: str) -> None:
    if images.shape[1] != 3:
        raise ValueError(f"{mechanism} needs RGB images [B, 3, H, W], got {images.shape[1]} channel(s)")


def _require_factor(strength: float, mechanism: str) -> None:
    if not strength >= 0.0:
        raise ValueError(f"{mechanism} factor must be >= 0, got {strength}")


# --- photometric mechanisms ---------------------------------------------------------------


def brightness(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Multiply pixel values in [0, 1] by ``strength`` (1 = identity, 0 = black), then clip."""
    _require_factor(strength, "brightness")
    return _from_unit(_to_unit(images) * strength)


def contrast(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Blend each image with its mean grey level: ``f * x + (1 - f) * mean`` in [0, 1], clipped.

    1 = identity, 0 = a flat image at the mean grey level, > 1 stretches away from it.
    """
    _require_factor(strength, "contrast")
    unit = _to_unit(images)
    mean = _grey(unit).mean(dim=(1, 2, 3), keepdim=True)
    return _from_unit(strength * unit + (1.0 - strength) * mean)


def saturation(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Blend each pixel with its own grey level (RGB only): 1 = identity, 0 = greyscale."""
    _require_rgb(images, "saturation")
    _require_factor(strength, "saturation")
    unit = _to_unit(images)
    return _from_unit(strength * unit + (1.0 - strength) * _grey(unit))


def rgb_to_hsv(unit: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> HSV, each in [0, 1] (hue in turns; hue 0 where grey)."""
    red, green, blue = unit.unbind(dim=1)
    value, argmax = unit.max(dim=1)
    chroma = value - unit.min(dim=1).values
    safe_chroma = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    safe_value = torch.where(value > 0, value, torch.ones_like(value))
    # Position on the colour hexagon, in sixths of a turn, by which channel is largest.
    sextant = torch.where(
        argmax == 0,
        torch.remainder((green - blue) / safe_chroma, 6.0),
        torch.where(argmax == 1, (blue - red) / safe_chroma + 2.0, (red - green) / safe_chroma + 4.0),
    )
    hue = torch.where(chroma > 0, sextant / 6.0, torch.zeros_like(chroma))
    sat = torch.where(value > 0, chroma / safe_value, torch.zeros_like(value))
    return torch.stack([torch.remainder(hue, 1.0), sat, value], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: [B, 3, H, W] HSV in [0, 1] -> RGB in [0, 1]."""
    hue, sat, value = hsv.unbind(dim=1)
    channels = []
    # Each channel is a periodic trapezoid in hue: full value on a third of the circle, falling
    # to value * (1 - sat) on the opposite third; offsets 5, 3, 1 sixths give R, G, B.
    for offset in (5.0, 3.0, 1.0):
        k = torch.remainder(offset + hue * 6.0, 6.0)
        ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
        channels.append(value - value * sat * ramp)
    return torch.stack(channels, dim=1)


def hue(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Rotate the hue by ``strength`` turns (RGB only), in [-0.5, 0.5]; 0 = identity.

    +0.5 and -0.5 give the same image (the complementary hue); grey pixels do not change.
    """
    _require_rgb(images, "hue")
    if not -0.5 <= strength <= 0.5:
        raise ValueError(f"hue shift must be in [-0.5, 0.5] turns, got {strength}")
    if strength == 0.0:
        return images.clamp(-1.0, 1.0)
    hsv = rgb_to_hsv(_to_unit(images))
    shifted = torch.cat([torch.remainder(hsv[:, :1] + strength, 1.0), hsv[:, 1:]], dim=1)
    return _from_unit(hsv_to_rgb(shifted))


# --- geometric mechanisms -----------------------------------------------------------------
# Areas that come from outside the original image are filled with black (-1), matching the
# authors' torchvision default fill 0 in [0, 1] pixel space.

FILL_VALUE = -1.0


def _sample_with_fill(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling at normalised ``grid`` (align_corners=False), outside = FILL_VALUE."""
    shifted = images - FILL_VALUE  # the fill becomes 0, which grid_sample pads with
    sampled = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (sampled + FILL_VALUE).clamp(-1.0, 1.0)


def rotation(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Rotate by ``strength`` degrees counter-clockwise (as displayed) about the image centre.

    Bilinear; corners uncovered by the rotated image are black (-1). 0 = identity; 90 on a
    square image is an exact quarter turn (``torch.rot90``).
    """
    if strength == 0.0:
        return images.clamp(-1.0, 1.0)
    batch, _, height, width = images.shape
    angle = math.radians(strength)
    cos, sin = math.cos(angle), math.sin(angle)
    # For each output point, the input point it comes from (inverse rotation), in pixels about
    # the centre, then rescaled to each axis's normalised [-1, 1] range (non-square images).
    theta = torch.tensor(
        [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
        dtype=images.dtype,
        device=images.device,
    )
    grid = F.affine_grid(theta.expand(batch, 2, 3), [batch, 1, height, width], align_corners=False)
    return _sample_with_fill(images, grid)


def perspective_corners(height: int, width: int, strength: float) -> list[tuple[float, float]]:
    """Where the image corners (top-left, top-right, bottom-right, bottom-left) go, as (x, y).

    The fixed pattern: the two top corners move inward by ``strength * (width / 2) / 2`` each,
    the bottom corners stay; the image becomes a trapezoid narrowing upward, like a plane
    tilted away from the viewer. ``strength * width / 2`` is the largest displacement
    torchvision's RandomPerspective draws, so this is half its maximum, deterministic.
    Coordinates are continuous: the image spans [0, width] x [0, height].
    """
    inset = strength * width / 4.0
    return [(inset, 0.0), (width - inset, 0.0), (float(width), float(height)), (0.0, float(height))]


def solve_homography(source: Sequence[tuple[float, float]], target: Sequence[tuple[float, float]]) -> torch.Tensor:
    """The 3x3 projective map (float64, last entry 1) taking four ``source`` points to ``target``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -x * u, -y * u])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -x * v, -y * v])
        rhs.extend([u, v])
    solution = torch.linalg.solve(torch.tensor(rows, dtype=torch.float64), torch.tensor(rhs, dtype=torch.float64))
    return torch.cat([solution, torch.ones(1, dtype=torch.float64)]).view(3, 3)


def perspective(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Deterministic perspective warp with distortion scale ``strength`` in [0, 1]; 0 = identity.

    See :func:`perspective_corners` for the corner pattern. Bilinear; outside = black (-1).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"perspective distortion scale must be in [0, 1], got {strength}")
    if strength == 0.0:
        return images.clamp(-1.0, 1.0)
    batch, _, height, width = images.shape
    corners = [(0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height))]
    # Map each output point back to the input point it shows.
    output_to_input = solve_homography(perspective_corners(height, width, strength), corners)
    ys = torch.arange(height, dtype=torch.float64) + 0.5
    xs = torch.arange(width, dtype=torch.float64) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1) @ output_to_input.T
    in_x, in_y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    grid = torch.stack([2.0 * in_x / width - 1.0, 2.0 * in_y / height - 1.0], dim=-1)
    grid = grid.to(dtype=images.dtype, device=images.device).expand(batch, height, width, 2)
    return _sample_with_fill(images, grid)


def downsample(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Resize to ``strength`` pixels on the longer side, then bilinearly back to the original size.

    The way down is bilinear with antialiasing (as PIL and torchvision resize); the shorter side
    keeps the aspect ratio (rounded, at least 1 px). A size >= the image size is the identity.
    """
    height, width = images.shape[-2:]
    if not strength >= 1.0:
        raise ValueError(f"downsample size must be >= 1 pixel, got {strength}")
    if strength >= max(height, width):
        return images.clamp(-1.0, 1.0)
    size = int(strength)  # whole pixels; a fractional size rounds down
    small_h = max(1, int(math.floor(height * size / max(height, width) + 0.5)))
    small_w = max(1, int(math.floor(width * size / max(height, width) + 0.5)))
    small = F.interpolate(images, size=(small_h, small_w), mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False).clamp(-1.0, 1.0)


MECHANISMS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "crop": centre_crop,
    "crop_pixel": pixel_aligned_crop,
    "brightness": brightness,
    "contrast": contrast,
    "saturation": saturation,
    "hue": hue,
    "rotation": rotation,
    "perspective": perspective,
    "downsample": downsample,
}

def make_neighbours(images: torch.Tensor, mechanism: str, strengths: Sequence[float]) -> torch.Tensor:
    """Stack the records and their neighbours: [B, 1 + N, C, H, W], index 0 the record itself."""
    check_mechanism(mechanism, images.shape[1])
    perturb = MECHANISMS[mechanism]
    neighbours = [images] + [perturb(images, float(strength)).clamp(-1.0, 1.0) for strength in strengths]
    return torch.stack(neighbours, dim=1)
