"""Unit tests of the perturbation mechanisms (pfami.perturb) on tiny images."""

from __future__ import annotations

import math

import pytest
import torch

from pfami import perturb as P

ALL = sorted(P.MECHANISMS)
GREY_OK = [name for name in ALL if name not in P.COLOUR_ONLY]


def natural(size: int, channels: int) -> torch.Tensor:
    """A natural-ish [1, C, S, S] image in [-1, 1]: smooth gradients plus an off-centre blob."""
    t = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    blob = torch.exp(-((xx - 0.3) ** 2 + (yy + 0.2) ** 2) / 0.1)
    if channels == 1:
        planes = [0.6 * xx + 0.3 * yy + 0.5 * blob - 0.2]
    else:
        planes = [0.6 * xx + 0.5 * blob - 0.2, 0.5 * yy - 0.6 * blob + 0.1, 0.4 * xx * yy + 0.3 * blob]
    return torch.stack(planes).unsqueeze(0).clamp(-1.0, 1.0)


def random_images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Uniform noise in [-1, 1] with some pixels exactly at -1 and 1 (range edge cases)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, channels, height, width, generator=generator) * 2.0 - 1.0
    images[..., 0, 0] = 1.0
    images[..., -1, -1] = -1.0
    return images


def channel_cases(mechanism: str) -> list[int]:
    return [3] if mechanism in P.COLOUR_ONLY else [1, 3]


def extreme_strengths(mechanism: str, size: int) -> list[float]:
    """Both ends of the paper's range, and of the range scaled to the image size."""
    first, last = P.DEFAULT_RANGES[mechanism]
    scaled = P.default_strengths(mechanism, image_size=size)
    return sorted({first, last, scaled[0], scaled[-1]})


# --- generic properties of every mechanism ------------------------------------------------


@pytest.mark.parametrize("mechanism", ALL)
@pytest.mark.parametrize("shape", [(8, 8), (16, 16), (8, 12)])
def test_shape_range_and_determinism_at_extremes(mechanism: str, shape: tuple[int, int]) -> None:
    for channels in channel_cases(mechanism):
        images = random_images(2, channels, *shape)
        for strength in extreme_strengths(mechanism, max(shape)):
            out = P.MECHANISMS[mechanism](images, strength)
            assert out.shape == images.shape
            assert out.dtype == images.dtype
            assert torch.isfinite(out).all()
            assert out.min() >= -1.0 and out.max() <= 1.0, (mechanism, strength)
            again = P.MECHANISMS[mechanism](images.clone(), strength)
            assert torch.equal(out, again), (mechanism, strength)


@pytest.mark.parametrize("mechanism", ALL)
@pytest.mark.parametrize("size", [8, 16])
def test_identity_at_neutral_strength(mechanism: str, size: int) -> None:
    for channels in channel_cases(mechanism):
        for images in (random_images(2, channels, size, size), natural(size, channels)):
            out = P.MECHANISMS[mechanism](images, P.neutral_strength(mechanism, image_size=size))
            torch.testing.assert_close(out, images, atol=1e-5, rtol=0.0)


def test_neutral_strength_values() -> None:
    assert P.neutral_strength("brightness") == 1.0
    assert P.neutral_strength("hue") == 0.0
    assert P.neutral_strength("rotation") == 0.0
    assert P.neutral_strength("downsample") == math.inf
    assert P.neutral_strength("downsample", image_size=16) == 16.0
    images = natural(16, 1)
    assert torch.equal(P.downsample(images, math.inf), images)


def monotone_sides(mechanism: str, size: int) -> list[list[float]]:
    """The default strengths on each side of neutral, ordered by distance from neutral.

    Rotation only up to 45 degrees: beyond it the black corners shrink again (to nothing at 90
    on a square image), so the total change need not grow; on the 32 px RGB test image it dips
    by 0.0002 between 81 and 90 degrees.
    """
    neutral = P.neutral_strength(mechanism, image_size=size)
    strengths = P.default_strengths(mechanism, image_size=size)
    if mechanism == "rotation":
        strengths = [s for s in strengths if s <= 45.0]
    sides = []
    for sign in (1.0, -1.0):
        side = sorted((s for s in strengths if (s - neutral) * sign > 0), key=lambda s: abs(s - neutral))
        if side:
            sides.append([neutral] + side)
    return sides


@pytest.mark.parametrize("mechanism", [name for name in ALL if name != "crop_pixel"])
@pytest.mark.parametrize("size", [16, 32])
def test_change_grows_with_distance_from_neutral(mechanism: str, size: int) -> None:
    """Mean absolute change from the original grows strictly along the default range.

    Ties are allowed only where two default strengths are the same operation: downsample
    sizes repeat after rounding on small images.
    """
    for channels in channel_cases(mechanism):
        images = natural(size, channels)
        for side in monotone_sides(mechanism, size):
            changes = [(P.MECHANISMS[mechanism](images, s) - images).abs().mean().item() for s in side]
            assert changes[0] < 1e-6
            for (s0, c0), (s1, c1) in zip(zip(side, changes), zip(side[1:], changes[1:])):
                if mechanism == "downsample" and s0 == s1:
                    assert c1 == c0
                else:
                    assert c1 > c0, (mechanism, channels, side, changes)


def test_pixel_aligned_crop_change_grows_over_centred_crops() -> None:
    """The authors' crop is monotone over crops that leave an even margin (centred crops).

    Odd margins put the crop half a pixel to the top-left (``(S - c) // 2``), which can change
    the image more than a slightly smaller centred crop, and equal ``int(S * strength)`` give
    the same neighbour: neither is monotone, by construction.
    """
    size = 16
    for channels in (1, 3):
        images = natural(size, channels)
        strengths = [s for s in P.default_strengths("crop_pixel") if (size - int(size * s)) % 2 == 0]
        crops = [int(size * s) for s in strengths]
        assert crops == sorted(crops, reverse=True) and len(set(crops)) >= 2
        changes = [(P.pixel_aligned_crop(images, s) - images).abs().mean().item() for s in strengths]
        for (k0, c0), (k1, c1) in zip(zip(crops, changes), zip(crops[1:], changes[1:])):
            assert c1 == c0 if k1 == k0 else c1 > c0


# --- hand-checked values ------------------------------------------------------------------


def test_brightness_known_pixels() -> None:
    # Pixel values -1, 0, 0.6 are 0, 0.5, 0.8 in [0, 1] pixel space.
    images = torch.tensor([-1.0, 0.0, 0.6]).view(1, 1, 1, 3)
    # Factor 1.5: 0, 0.75, 1.2 -> clipped to 1; back in [-1, 1]: -1, 0.5, 1.
    torch.testing.assert_close(P.brightness(images, 1.5), torch.tensor([-1.0, 0.5, 1.0]).view(1, 1, 1, 3))
    # Factor 0.5: 0, 0.25, 0.4 -> -1, -0.5, -0.2.
    torch.testing.assert_close(P.brightness(images, 0.5), torch.tensor([-1.0, -0.5, -0.2]).view(1, 1, 1, 3))
    assert torch.equal(P.brightness(images, 0.0), torch.full_like(images, -1.0))


def test_contrast_known_pixels() -> None:
    # A 2x2 grey checkerboard of 0 and 1 in [0, 1] space: mean grey level 0.5.
    images = torch.tensor([[-1.0, 1.0], [1.0, -1.0]]).view(1, 1, 2, 2)
    # Factor 0.5: 0.5 * x + 0.25 -> 0.25 and 0.75 -> -0.5 and 0.5.
    torch.testing.assert_close(P.contrast(images, 0.5), images * 0.5)
    # Factor 0: flat at the mean grey level (0 here).
    torch.testing.assert_close(P.contrast(images, 0.0), torch.zeros_like(images))
    # The mean is per image: a second, brighter image in the batch does not move the first.
    batch = torch.cat([images, torch.full_like(images, 0.8)])
    torch.testing.assert_close(P.contrast(batch, 0.5)[:1], images * 0.5)
    torch.testing.assert_close(P.contrast(batch, 0.5)[1:], torch.full_like(images, 0.8))


def test_saturation_known_pixels() -> None:
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)  # (1, 0, 0) in [0, 1] space
    grey = 2.0 * 0.299 - 1.0  # BT.601 luma of pure red
    torch.testing.assert_close(P.saturation(red, 0.0), torch.full_like(red, grey))
    # Factor 2: 2 * x - luma, in [0, 1] space: R = 2 - 0.299 -> 1 (clipped), G = B = -0.299 -> 0.
    torch.testing.assert_close(P.saturation(red, 2.0), red)
    # Grey pixels have nothing to saturate.
    flat = torch.full((1, 3, 2, 2), 0.3)
    torch.testing.assert_close(P.saturation(flat, 2.0), flat)


def test_hue_known_colours() -> None:
    def colour(r: float, g: float, b: float) -> torch.Tensor:
        return torch.tensor([r, g, b]).view(1, 3, 1, 1) * 2.0 - 1.0

    red = colour(1, 0, 0)
    torch.testing.assert_close(P.hue(red, 1 / 3), colour(0, 1, 0), atol=1e-5, rtol=0)
    torch.testing.assert_close(P.hue(red, -1 / 3), colour(0, 0, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(P.hue(red, 0.5), colour(0, 1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(P.hue(red, 1 / 6), colour(1, 1, 0), atol=1e-5, rtol=0)
    # A darker, less saturated orange (hue 1/12) keeps value and saturation when shifted:
    # a third of a turn cycles the channels, a quarter lands on pure green's hue (1/3).
    orange = colour(0.8, 0.6, 0.4)
    torch.testing.assert_close(P.hue(orange, 1 / 3), colour(0.4, 0.8, 0.6), atol=1e-5, rtol=0)
    torch.testing.assert_close(P.hue(orange, 1 / 4), colour(0.4, 0.8, 0.4), atol=1e-5, rtol=0)
    # Grey pixels have no hue; +0.5 and -0.5 turns are the same shift.
    flat = torch.full((1, 3, 2, 2), -0.2)
    torch.testing.assert_close(P.hue(flat, 0.3), flat)
    images = random_images(2, 3, 8, 8)
    torch.testing.assert_close(P.hue(images, 0.5), P.hue(images, -0.5), atol=1e-5, rtol=0)


def test_hsv_round_trip() -> None:
    unit = (random_images(2, 3, 8, 8) + 1.0) / 2.0
    torch.testing.assert_close(P.hsv_to_rgb(P.rgb_to_hsv(unit)), unit, atol=1e-5, rtol=0)
    hsv = P.rgb_to_hsv(unit)
    assert hsv.min() >= 0.0 and hsv.max() <= 1.0


def test_rotation_quarter_turns_and_fill() -> None:
    images = random_images(2, 3, 8, 8)
    # Counter-clockwise as displayed, i.e. torch.rot90 from the row axis towards the column axis.
    torch.testing.assert_close(P.rotation(images, 90.0), torch.rot90(images, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(P.rotation(images, 180.0), images.flip(-1).flip(-2), atol=1e-5, rtol=0)
    # 45 degrees: the corners come from outside the image and are black; the centre is kept.
    white = torch.ones(1, 1, 16, 16)
    out = P.rotation(white, 45.0)
    assert torch.equal(out[..., [0, 0, -1, -1], [0, -1, 0, -1]], torch.full((1, 1, 4), -1.0))
    assert torch.equal(out[..., 6:10, 6:10], torch.ones(1, 1, 4, 4))


def test_perspective_pattern() -> None:
    size = 16
    corners = P.perspective_corners(size, size, 1.0)
    assert corners == [(4.0, 0.0), (12.0, 0.0), (16.0, 16.0), (0.0, 16.0)]
    # The solved homography sends each corner where it should go.
    square = [(0.0, 0.0), (16.0, 0.0), (16.0, 16.0), (0.0, 16.0)]
    homography = P.solve_homography(square, corners)
    for (x, y), (u, v) in zip(square, corners):
        mapped = homography @ torch.tensor([x, y, 1.0], dtype=torch.float64)
        assert torch.allclose(mapped[:2] / mapped[2], torch.tensor([u, v], dtype=torch.float64))
    # A white image becomes a white trapezoid narrowing upward on black.
    out = P.perspective(torch.ones(1, 1, size, size), 1.0)
    assert torch.equal(out[0, 0, 0, :3], torch.full((3,), -1.0))  # top-left, outside
    assert torch.equal(out[0, 0, 0, -3:], torch.full((3,), -1.0))  # top-right, outside
    torch.testing.assert_close(out[0, 0, :-1, 5:11], torch.ones(size - 1, 6))  # the middle columns stay
    # Projective, not affine: the near (bottom) side is magnified two-fold, so the bottom row
    # centre (y = 15.5) shows the source at y = 2 * 15.5 / (1 + 15.5 / 16) = 15.746, i.e. 0.246
    # past the last row's centre towards the black: (1 - 0.246) * 1 + 0.246 * (-1) = 0.508.
    torch.testing.assert_close(out[0, 0, -1, 5:11], torch.full((6,), 1.0 - 2.0 * (31 / 1.96875 - 15.5)))


def test_downsample_known_cases() -> None:
    flat = torch.full((2, 3, 16, 16), 0.4)
    torch.testing.assert_close(P.downsample(flat, 4.0), flat)
    images = natural(16, 1)
    one = P.downsample(images, 1.0)  # a single pixel, stretched back: a flat image
    assert torch.allclose(one, one[..., :1, :1].expand_as(one))
    assert torch.equal(P.downsample(images, 16.0), images)
    assert torch.equal(P.downsample(images, 32.0), images)
    # A fractional size rounds down to whole pixels.
    assert torch.equal(P.downsample(images, 4.7), P.downsample(images, 4.0))
    with pytest.raises(ValueError):
        P.downsample(images, 0.5)


def test_pixel_aligned_crop_on_4x4() -> None:
    images = (torch.arange(16.0).view(1, 1, 4, 4) / 15.0) * 2.0 - 1.0
    # Strength 0.5 keeps the centre 2x2 block [[5, 6], [9, 10]] (scaled) ...
    block = images[0, 0, 1:3, 1:3]
    # ... and a bilinear 2 -> 4 resize (align_corners=False) samples it at -0.25, 0.25, 0.75,
    # 1.25 (edges clamped): weights [1, 0], [3/4, 1/4], [1/4, 3/4], [0, 1].
    weights = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    expected = (weights @ block @ weights.T).view(1, 1, 4, 4)
    torch.testing.assert_close(P.pixel_aligned_crop(images, 0.5), expected)
    # Strength 0.75 keeps int(3) pixels from offset (4 - 3) // 2 = 0: the top-left 3x3.
    three = images[..., :3, :3]
    resized = torch.nn.functional.interpolate(three, size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(P.pixel_aligned_crop(images, 0.75), resized)


@pytest.mark.parametrize(("size", "strength"), [(8, 0.5), (8, 0.75), (16, 0.75), (16, 0.875), (16, 0.5)])
def test_sub_pixel_crop_matches_pixel_aligned_on_whole_centred_crops(size: int, strength: float) -> None:
    """When S * strength is a whole number with an even margin both crops take the same box.

    They agree everywhere but the outermost ring of output pixels: there the resize samples
    within half a pixel of the crop edge, where ``interpolate`` repeats the crop's edge pixel
    while the sub-pixel zoom blends in the real pixel just outside the crop.
    """
    assert (size - size * strength) % 2 == 0
    for channels in (1, 3):
        images = random_images(2, channels, size, size)
        sub_pixel, aligned = P.centre_crop(images, strength), P.pixel_aligned_crop(images, strength)
        torch.testing.assert_close(sub_pixel[..., 1:-1, 1:-1], aligned[..., 1:-1, 1:-1])
        assert not torch.allclose(sub_pixel, aligned, atol=1e-3)


def test_sub_pixel_crop_differs_on_odd_margin() -> None:
    """With an odd margin the authors' crop sits half a pixel up-left of the true centre."""
    images = natural(16, 1)
    strength = 13 / 16
    assert not torch.allclose(P.centre_crop(images, strength), P.pixel_aligned_crop(images, strength), atol=1e-3)
    # It is the centred crop of the image shifted half a pixel: symmetric under a flip.
    symmetric = images + images.flip(-1).flip(-2)
    flipped = P.centre_crop(symmetric, strength).flip(-1).flip(-2)
    torch.testing.assert_close(P.centre_crop(symmetric, strength), flipped, atol=1e-5, rtol=0)


# --- default strengths --------------------------------------------------------------------


def test_default_ranges_cover_every_mechanism() -> None:
    assert set(P.DEFAULT_RANGES) == set(P.MECHANISMS)
    assert P.DEFAULT_RANGES["crop"] == (0.95, 0.70)
    assert P.DEFAULT_RANGES["brightness"] == (2.0, 0.1)
    assert P.DEFAULT_RANGES["hue"] == (0.5, -0.5)
    assert P.DEFAULT_RANGES["downsample"] == (32.0, 4.0)


@pytest.mark.parametrize("mechanism", ALL)
def test_default_strengths_shape(mechanism: str) -> None:
    for count in (1, 5, 10):
        strengths = P.default_strengths(mechanism, count=count)
        assert len(strengths) == count
        assert all(isinstance(s, float) for s in strengths)
        # The identity is never a neighbour, except where the paper's range crosses it: hue
        # 0.5 -> -0.5 with an odd count has 0 in the middle.
        if not (mechanism == "hue" and count % 2 == 1):
            assert P.neutral_strength(mechanism) not in strengths
        first, last = P.DEFAULT_RANGES[mechanism]
        if count > 1:
            assert strengths[-1] == pytest.approx(last)
        lo, hi = min(first, last), max(first, last)
        assert all(lo - 1e-9 <= s <= hi + 1e-9 for s in strengths)


def test_default_strengths_values() -> None:
    assert P.default_strengths("crop") == pytest.approx([0.95 - 0.25 * k / 9 for k in range(10)])
    assert P.default_strengths("brightness", count=2) == pytest.approx([2.0, 0.1])
    # The range starts at the identity: those neighbours are left out unless asked for.
    assert P.default_strengths("rotation") == pytest.approx([9.0 * k for k in range(1, 11)])
    assert P.default_strengths("perspective", count=4) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert P.default_strengths("rotation", count=4, skip_neutral=False) == pytest.approx([0.0, 30.0, 60.0, 90.0])
    # Downsample: whole pixels; 32 -> 4 for 64 px images, scaled by image_size / 64.
    assert P.default_strengths("downsample", count=8) == [32.0, 28.0, 24.0, 20.0, 16.0, 12.0, 8.0, 4.0]
    assert P.default_strengths("downsample", count=8, image_size=64) == P.default_strengths("downsample", count=8)
    assert P.default_strengths("downsample", count=8, image_size=16) == [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert P.default_strengths("downsample", image_size=128)[0] == 64.0
    with pytest.raises(ValueError):
        P.default_strengths("crop", count=0)


# --- refusals and neighbour stacking ------------------------------------------------------


@pytest.mark.parametrize("mechanism", sorted(P.COLOUR_ONLY))
def test_colour_only_refused_on_grey(mechanism: str) -> None:
    assert P.COLOUR_ONLY == {"saturation", "hue"}
    with pytest.raises(ValueError) as refused:
        P.check_mechanism(mechanism, 1)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("perturbation.mechanism:")
    assert repr(mechanism) in message and "choose another mechanism" in message
    P.check_mechanism(mechanism, 3)
    with pytest.raises(ValueError, match="perturbation.mechanism"):
        P.make_neighbours(torch.zeros(1, 1, 8, 8), mechanism, [0.5])
    with pytest.raises(ValueError, match="RGB"):
        P.MECHANISMS[mechanism](torch.zeros(1, 1, 8, 8), 0.5)


def test_unknown_mechanism_refused() -> None:
    with pytest.raises(ValueError, match=r"perturbation\.mechanism: unknown mechanism 'blur'") as refused:
        P.check_mechanism("blur", 3)
    assert "brightness" in str(refused.value)
    with pytest.raises(ValueError, match="unknown mechanism"):
        P.make_neighbours(torch.zeros(1, 3, 8, 8), "blur", [0.5])
    with pytest.raises(ValueError, match="unknown mechanism"):
        P.default_strengths("blur")


@pytest.mark.parametrize("mechanism", ALL)
def test_make_neighbours_stacks_record_first(mechanism: str) -> None:
    channels = 3 if mechanism in P.COLOUR_ONLY else 1
    images = random_images(3, channels, 8, 8)
    strengths = P.default_strengths(mechanism, count=4, image_size=8)
    stacked = P.make_neighbours(images, mechanism, strengths)
    assert stacked.shape == (3, 5, channels, 8, 8)
    assert torch.equal(stacked[:, 0], images)
    for index, strength in enumerate(strengths, start=1):
        torch.testing.assert_close(stacked[:, index], P.MECHANISMS[mechanism](images, strength))
    assert stacked.min() >= -1.0 and stacked.max() <= 1.0
