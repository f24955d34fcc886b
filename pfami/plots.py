"""Every figure of the pipeline (matplotlib, PNG, written atomically)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pfami.io import atomic_path  # noqa: E402


def _save(figure, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight", format="png")
    plt.close(figure)


def plot_roc(curves: dict[str, np.ndarray], aucs: dict[str, float], title: str, path: str | Path,
             smallest_fpr: float, baseline_labels: Collection[str] = ()) -> None:
    """Log-log ROC curves ({label: [K, 2+] fpr, tpr}) with the chance line; the curves of
    ``baseline_labels`` are dash-dotted so PFAMI's stand out among many attacks."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    floor = smallest_fpr / 2
    for label, points in curves.items():
        axes.plot(np.maximum(points[:, 0], floor), np.maximum(points[:, 1], floor),
                  label=f"{label} (AUC {aucs[label]:.3f})", linewidth=1.5,
                  linestyle="-." if label in baseline_labels else "-")
    chance = np.logspace(np.log10(floor), 0, 50)
    axes.plot(chance, chance, "k--", linewidth=1, label="chance")
    axes.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05), xlabel="False positive rate",
             ylabel="True positive rate (members)", title=title)
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(True, which="both", alpha=0.3)
    _save(figure, path)


def plot_fluctuation_matrices(member_mean: np.ndarray, non_member_mean: np.ndarray, timesteps: list[int],
                              strengths: list[float], title: str, path: str | Path, row_label: str = "timestep") -> None:
    """Mean calibrated fluctuation H of members and of non-members side by side, one colour scale."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.05]})
    limit = float(np.abs(np.stack([member_mean, non_member_mean])).max()) or 1.0
    for ax, matrix, name in zip(axes[:2], (member_mean, non_member_mean), ("members", "non-members")):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set(title=f"mean H, {name}", xlabel="perturbation strength", ylabel=row_label,
               xticks=range(len(strengths)), yticks=range(len(timesteps)))
        ax.set_xticklabels([f"{s:.2f}" for s in strengths], rotation=60, fontsize=7)
        ax.set_yticklabels([str(t) for t in timesteps], fontsize=7)
    figure.colorbar(image, cax=axes[2], label="H = r_target - r_reference")
    figure.suptitle(title)
    _save(figure, path)


def plot_loss_curves(curves: dict[str, np.ndarray], title: str, path: str | Path, window: int = 50,
                     quantity: str = "denoising loss") -> None:
    """Training loss per step (moving average over ``window`` steps) of each model."""
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        if len(curve) == 0:  # a model trained elsewhere
            continue
        width = max(1, min(window, len(curve)))
        smoothed = np.convolve(curve, np.ones(width) / width, mode="valid")
        axes.plot(np.arange(width, len(curve) + 1), smoothed, label=label)
    axes.set(xlabel="training step", ylabel=f"{quantity} ({window}-step mean)", title=title, yscale="log")
    axes.legend()
    axes.grid(True, alpha=0.3)
    _save(figure, path)


def plot_score_distributions(scores: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: str | Path) -> None:
    """Histograms of member and non-member scores per attack ({label: (member, non-member)})."""
    count = len(scores)
    columns = min(3, count)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, (label, (member_scores, non_member_scores)) in zip(axes.flat, scores.items()):
        bins = np.histogram_bin_edges(np.concatenate([member_scores, non_member_scores]), bins=30)
        ax.hist(non_member_scores, bins=bins, alpha=0.6, label="non-members")
        ax.hist(member_scores, bins=bins, alpha=0.6, label="members")
        ax.set(title=label, xlabel="score (higher = member)", ylabel="records")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)


def plot_sample_grid(rows: dict[str, np.ndarray], title: str, path: str | Path) -> None:
    """One row of generated images per label ({label: [n, C, S, S] in [-1, 1]})."""
    count = max(len(images) for images in rows.values())
    figure, axes = plt.subplots(len(rows), count, figsize=(0.8 * count, 0.95 * len(rows) + 0.4), squeeze=False)
    for row_axes, (label, images) in zip(axes, rows.items()):
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax, image in zip(row_axes, images):
            unit = np.clip((image.transpose(1, 2, 0) + 1.0) / 2.0, 0.0, 1.0)
            ax.imshow(unit[:, :, 0] if unit.shape[2] == 1 else unit, cmap="gray", vmin=0.0, vmax=1.0)
        row_axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title)
    _save(figure, path)


def plot_privacy_study(rows: list[dict], display_names: dict[str, str], largest_provable: float, title: str,
                       path: str | Path) -> None:
    """AUC, TPR@1%FPR and the empirical epsilon of every attack against the training's epsilon (log axis;
    the non-private model at the right, past the largest epsilon), with chance levels, the line
    eps_lb = epsilon (a point above it would break the DP guarantee) and the most the record counts prove."""
    finite = sorted({row["epsilon"] for row in rows if np.isfinite(row["epsilon"])})
    no_dp = finite[-1] * 4 if finite else 1.0
    position = {epsilon: epsilon for epsilon in finite} | {np.inf: no_dp}
    attacks = list(dict.fromkeys(row["attack"] for row in rows))
    figure, panels = plt.subplots(1, 3, figsize=(15, 4.6))
    for attack in attacks:
        own = sorted((row for row in rows if row["attack"] == attack), key=lambda row: row["epsilon"])
        x = [position[row["epsilon"]] for row in own]
        for axes, key in zip(panels, ("auc", "tpr_at_0.01_fpr", "eps_lb")):
            axes.plot(x, [row[key] for row in own], marker="o", linewidth=1.3, label=display_names.get(attack, attack))
    panels[0].axhline(0.5, color="k", linestyle="--", linewidth=1, label="chance")
    panels[1].axhline(0.01, color="k", linestyle="--", linewidth=1, label="chance")
    line = np.array([min(finite or [1.0]) / 2, no_dp])
    panels[2].plot(line, line, color="r", linewidth=1.2, label="eps_lb = epsilon (the DP bound)")
    panels[2].axhline(largest_provable, color="grey", linestyle=":", linewidth=1.2,
                      label=f"most these records can prove ({largest_provable:.2f})")
    labels = [f"{epsilon:g}" for epsilon in finite] + ["no DP"]
    for axes, ylabel in zip(panels, ("AUC", "TPR at 1% FPR", "empirical epsilon (lower bound)")):
        axes.set(xscale="log", xlabel="training epsilon (DP-SGD)", ylabel=ylabel)
        axes.set_xticks(finite + [no_dp], labels)
        axes.minorticks_off()
        axes.grid(True, alpha=0.3)
    panels[2].set_ylim(0, max(largest_provable * 1.1, max(row["eps_lb"] for row in rows) * 1.1))
    panels[0].legend(fontsize=7, loc="upper left")
    panels[2].legend(fontsize=7, loc="upper left")
    figure.suptitle(title)
    _save(figure, path)


def plot_image_rows(images: dict[str, np.ndarray], title: str, path: str | Path) -> None:
    """Saved image grids ({label: RGB(A) array}) stacked one per row, each labelled."""
    figure, rows = plt.subplots(len(images), 1, figsize=(10, 1.9 * len(images)), squeeze=False)
    for axes, (label, image) in zip(rows[:, 0], images.items()):
        axes.imshow(image)
        axes.set_axis_off()
        axes.set_title(label, fontsize=9, loc="left")
    figure.suptitle(title)
    _save(figure, path)
