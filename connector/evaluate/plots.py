"""The paper's figures: grouped per-observation F1 bars (Figure 2) and a heatmap of absolute F1 differences of
the first labeler against each other one (Figure 3). Agg backend: no display needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def f1_bars(
    f1: Mapping[str, Sequence[float]], observations: Sequence[str], path: Path, title: str, ylabel: str
) -> None:
    """``f1[labeler]`` = per-observation scores in ``observations`` order. NaN bars are left empty."""
    names = list(f1)
    n = len(names)
    x = np.arange(len(observations))
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(10, 0.9 * len(observations) * max(1, n / 2)), 5.5), dpi=120)
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(names):
        values = np.asarray(f1[name], dtype=float)
        ax.bar(x + (k - (n - 1) / 2) * width, np.nan_to_num(values), width, label=name, color=cmap(k % 10))
    ax.set_xticks(x)
    ax.set_xticklabels(observations, rotation=40, ha="right", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=min(n, 4), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def f1_diff_heatmap(
    f1: Mapping[str, Sequence[float]], observations: Sequence[str], path: Path, title: str
) -> None:
    """Rows: "first vs other" for every other labeler; cells: |F1_first - F1_other| per observation."""
    names = list(f1)
    first = np.asarray(f1[names[0]], dtype=float)
    others = names[1:]
    diffs = np.array([np.abs(first - np.asarray(f1[o], dtype=float)) for o in others]).reshape(
        len(others), len(observations)
    )
    fig_h = 1.6 + 0.7 * max(len(others), 1)
    fig, ax = plt.subplots(figsize=(max(10, 0.85 * len(observations)), fig_h), dpi=120)
    if diffs.size:
        vmax = max(float(np.nanmax(diffs)) if not np.all(np.isnan(diffs)) else 0.0, 0.05)
        image = ax.imshow(diffs, cmap="Reds", vmin=0, vmax=vmax, aspect="auto")
        for i in range(diffs.shape[0]):
            for j in range(diffs.shape[1]):
                value = diffs[i, j]
                text = "n/a" if np.isnan(value) else f"{value:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if not np.isnan(value) and value > 0.6 * vmax else "black")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="|ΔF1|")
    else:
        ax.text(0.5, 0.5, "only one labeler: nothing to compare", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(np.arange(len(observations)))
    ax.set_xticklabels(observations, rotation=40, ha="right", fontsize=9)
    ax.set_yticks(np.arange(len(others)))
    ax.set_yticklabels([f"{names[0]} vs {o}" for o in others], fontsize=9)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
