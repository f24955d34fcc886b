"""Figures of the ablation studies (one PNG per study, two panels: AUC and TPR at 1% FPR)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pfami.ablations import TPR_AT_1_PERCENT  # noqa: E402
from pfami.attacks import DISPLAY_NAMES  # noqa: E402
from pfami.plots import _save  # noqa: E402

PANELS = (("auc", "AUC"), (TPR_AT_1_PERCENT, "TPR at 1% FPR"))


def _label(attack: str) -> str:
    return DISPLAY_NAMES.get(attack, attack)


def _panels(title: str, width: float = 10.5):
    figure, axes = plt.subplots(1, 2, figsize=(width, 4))
    figure.suptitle(title)
    for ax, (_, name) in zip(axes, PANELS):
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    return figure, axes


def _lines(ax, rows: list[dict], x_key: str, metric: str, group_key: str = "attack", marker: str = "o") -> None:
    for group in dict.fromkeys(row[group_key] for row in rows):
        selected = sorted((row for row in rows if row[group_key] == group), key=lambda row: row[x_key])
        ax.plot([row[x_key] for row in selected], [row[metric] for row in selected], marker=marker,
                label=_label(str(group)))


def plot_timesteps(rows: list[dict], title: str, path: str | Path) -> None:
    """Per-timestep AUC (solid) and AUC of the first k timesteps (dashed, at the k-th timestep)."""
    figure, axes = _panels(title)
    for ax, (metric, _) in zip(axes, PANELS):
        for study, style, suffix in (("one_timestep", "-o", "this timestep only"),
                                     ("first_timesteps", "--s", "timesteps up to this one")):
            for attack in ("pfami_met", "loss"):
                selected = [row for row in rows if row["study"] == study and row["attack"] == attack]
                ax.plot([row["timestep"] for row in selected], [row[metric] for row in selected], style,
                        label=f"{_label(attack)}, {suffix}")
        ax.set_xlabel("timestep t")
    axes[0].axhline(0.5, color="k", linewidth=0.8, linestyle=":")
    axes[0].legend(fontsize=7)
    _save(figure, path)


def plot_strengths(rows: list[dict], title: str, path: str | Path) -> None:
    """PFAMI_Met against the number of neighbours (left axis pair) and the strength used."""
    figure, axes = plt.subplots(2, 2, figsize=(10.5, 7.5))
    figure.suptitle(title)
    counts = [row for row in rows if row["study"] == "neighbour_count"]
    single = [row for row in rows if row["study"] == "one_strength"]
    ranges = [row for row in rows if row["study"] == "strength_range"]
    for column, (metric, name) in enumerate(PANELS):
        top, bottom = axes[0, column], axes[1, column]
        top.plot([row["neighbour_count"] for row in counts], [row[metric] for row in counts], "-o")
        top.set(xlabel="neighbours N (spread over the configured strengths)", ylabel=name)
        bottom.plot([row["strength_last"] for row in single], [row[metric] for row in single], "-o",
                    label="this strength only")
        bottom.plot([row["strength_last"] for row in ranges], [row[metric] for row in ranges], "--s",
                    label=f"strengths from {ranges[0]['strength_first']:g} to this one")
        bottom.set(xlabel="perturbation strength", ylabel=name)
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
    axes[1, 0].legend(fontsize=7)
    figure.tight_layout()
    _save(figure, path)


def plot_query_budget(rows: list[dict], title: str, path: str | Path) -> None:
    """Success against network evaluations per record: PFAMI_Met sub-grids (one line per timestep
    count), the loss baselines on the first k timesteps, and every attack's full-budget point."""
    figure, axes = _panels(title, width=12)
    subsets = [row for row in rows if row["source"] == "subset"]
    full = [row for row in rows if row["source"] == "metrics.json"]
    markers = "*^vD<>phX"
    for ax, (metric, _) in zip(axes, PANELS):
        pfami = [row for row in subsets if row["attack"] == "pfami_met"]
        for count in dict.fromkeys(row["timestep_count"] for row in pfami):
            selected = sorted((row for row in pfami if row["timestep_count"] == count), key=lambda row: row["queries"])
            ax.plot([row["queries"] for row in selected], [row[metric] for row in selected], "-o", markersize=3,
                    alpha=0.7, label=f"PFAMI_Met, {count} timestep(s), N varies")
        for attack in ("loss", "calibrated_loss"):
            selected = sorted((row for row in subsets if row["attack"] == attack), key=lambda row: row["queries"])
            ax.plot([row["queries"] for row in selected], [row[metric] for row in selected], "--s", markersize=4,
                    label=f"{_label(attack)}, first k timesteps")
        for index, row in enumerate(full):
            ax.plot(row["queries"], row[metric], markers[index % len(markers)], markersize=10, color="k",
                    markerfacecolor="none", label=f"{_label(row['attack'])} (as configured)")
        ax.set(xscale="log", xlabel="network evaluations per record (target + reference model)")
    axes[1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    _save(figure, path)


def plot_mechanisms(rows: list[dict], title: str, path: str | Path) -> None:
    """Grouped bars: each mechanism, PFAMI_Met and PFAMI_NNs side by side."""
    figure, axes = _panels(title, width=12)
    mechanisms = list(dict.fromkeys(row["mechanism"] for row in rows))
    attacks = list(dict.fromkeys(row["attack"] for row in rows))
    width = 0.8 / len(attacks)
    for ax, (metric, _) in zip(axes, PANELS):
        for offset, attack in enumerate(attacks):
            values = {row["mechanism"]: row[metric] for row in rows if row["attack"] == attack}
            positions = [index + (offset - (len(attacks) - 1) / 2) * width for index in range(len(mechanisms))]
            ax.bar(positions, [values.get(mechanism, 0.0) for mechanism in mechanisms], width, label=_label(attack))
        ax.set_xticks(range(len(mechanisms)))
        ax.set_xticklabels(mechanisms, rotation=30)
    axes[0].axhline(0.5, color="k", linewidth=0.8, linestyle=":")
    axes[0].legend(fontsize=8)
    _save(figure, path)


def plot_memorisation(rows: list[dict], title: str, path: str | Path) -> None:
    """Attack success against the target's training steps."""
    figure, axes = _panels(title)
    for ax, (metric, _) in zip(axes, PANELS):
        _lines(ax, rows, "training_step", metric)
        ax.set_xlabel("target training steps")
    axes[0].axhline(0.5, color="k", linewidth=0.8, linestyle=":")
    axes[0].legend(fontsize=8)
    _save(figure, path)


def plot_classifier_seeds(rows: list[dict], title: str, path: str | Path) -> None:
    """PFAMI_NNs per classifier seed, a colour per classifier (the main run's seed filled), each
    classifier's mean over seeds, and a ResNet's ensemble."""
    figure, axes = _panels(title, width=9)
    classifiers = list(dict.fromkeys(row["classifier"] for row in rows))
    for ax, (metric, _) in zip(axes, PANELS):
        for colour, classifier in enumerate(classifiers):
            single = [row[metric] for row in rows if row["classifier"] == classifier and row["run"] != "ensemble"]
            ensemble = [row[metric] for row in rows if row["classifier"] == classifier and row["run"] == "ensemble"]
            ax.plot(range(len(single)), single, "o", color=f"C{colour}", fillstyle="none",
                    label=f"{classifier}: one classifier per seed")
            ax.plot([0], single[:1], "o", color=f"C{colour}", label=f"{classifier}: the main run's seed")
            ax.axhline(sum(single) / len(single), color=f"C{colour}", linewidth=0.8, linestyle="--",
                       label=f"{classifier}: mean over seeds")
            if ensemble:
                ax.plot([len(single)], ensemble, "D", color=f"C{colour}", label=f"{classifier}: ensemble (mean score)")
        seeds = max(sum(row["run"] != "ensemble" for row in rows if row["classifier"] == name) for name in classifiers)
        has_ensemble = any(row["run"] == "ensemble" for row in rows)
        ax.set_xticks(range(seeds + has_ensemble), [str(index) for index in range(seeds)] + ["ens."] * has_ensemble)
        ax.set_xlabel("classifier seed")
    axes[0].legend(fontsize=7)
    _save(figure, path)
