"""The figure of the most exposed records (``pfami.exposure``): the members the best attack ranks highest
beside the non-members it ranks highest, each image with its rank and score."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pfami.plots import _save  # noqa: E402

COLUMNS = 4
# A faint tint per panel (members, non-members), so that the two read as two groups at a glance.
TINTS = ("#eef5ee", "#f8eeee")


def _as_picture(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    unit = np.clip((np.asarray(image).transpose(1, 2, 0) + 1.0) / 2.0, 0.0, 1.0)
    return (unit[:, :, 0], "gray") if unit.shape[2] == 1 else (unit, None)


def plot_exposed_records(panels: list[tuple[str, np.ndarray, list[str]]], title: str, path: str | Path,
                         note: str = "") -> None:
    """``panels``: (heading, images [k, C, S, S] in [-1, 1], one caption per image), drawn side by side
    as grids of ``COLUMNS`` images; ``note`` goes under the figure."""
    count = max(len(images) for _, images, _ in panels)
    rows = max(1, -(-count // COLUMNS))
    figure = plt.figure(figsize=(2.1 * COLUMNS * len(panels), 2.2 * rows + 1.2), layout="constrained")
    figure.suptitle(title, fontsize=12, fontweight="bold")
    subfigures = np.atleast_1d(figure.subfigures(1, len(panels), wspace=0.03))
    for number, (subfigure, (heading, images, captions)) in enumerate(zip(subfigures, panels)):
        subfigure.set_facecolor(TINTS[number % len(TINTS)])
        subfigure.suptitle(heading, fontsize=11)
        for slot, ax in enumerate(subfigure.subplots(rows, COLUMNS, squeeze=False).flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if slot >= len(images):
                ax.axis("off")
                continue
            picture, colours = _as_picture(images[slot])
            ax.imshow(picture, cmap=colours, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(captions[slot], fontsize=8.5)
    if note:
        figure.supxlabel(note, fontsize=8.5)
    _save(figure, path)
