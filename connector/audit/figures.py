"""The audit report's plots, as PNG bytes (matplotlib, Agg backend): already a dependency, renders offline, and a
PNG inlines into one HTML file that opens with no network and no script (an interactive library would need its
JavaScript inlined, ~3-4 MB per page, for plots a meeting only looks at)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_DPI = 100


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _period_axis(ax: plt.Axes, index: pd.Index) -> None:
    ax.set_xticks(range(len(index)))
    step = max(1, len(index) // 8)
    ax.set_xticklabels([str(p) if i % step == 0 else "" for i, p in enumerate(index)], rotation=30, ha="right",
                       fontsize=8)


def prevalence(shares: dict[str, pd.DataFrame], observations: Sequence[str]) -> bytes:
    """Small multiples: per observation, the share of report versions labeled positive and uncertain per period.
    ``shares[observation]``: index = periods, columns = positive, uncertain (0..1)."""
    cols = 4
    rows = int(np.ceil(len(observations) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.4 * rows), sharey=True, squeeze=False)
    for k, name in enumerate(observations):
        ax = axes[k // cols][k % cols]
        frame = shares[name]
        x = np.arange(len(frame.index))
        ax.plot(x, frame["positive"] * 100, marker="o", ms=3, color="#c0392b", label="positive")
        ax.plot(x, frame["uncertain"] * 100, marker="s", ms=3, color="#e67e22", label="uncertain")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        _period_axis(ax, frame.index)
    for k in range(len(observations), rows * cols):
        axes[k // cols][k % cols].axis("off")
    axes[0][0].set_ylabel("% of reports")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _png(fig)


def rates(frame: pd.DataFrame) -> bytes:
    """Per period, % of report versions labeled by the fallback and % of input records dead-lettered.
    ``frame``: index periods, columns fallback_pct, dead_letter_pct (NaN when unknown)."""
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x = np.arange(len(frame.index))
    width = 0.4
    ax.bar(x - width / 2, frame["fallback_pct"].fillna(0), width, label="fallback (rules stood in)", color="#8e44ad")
    ax.bar(x + width / 2, frame["dead_letter_pct"].fillna(0), width, label="dead-lettered", color="#7f8c8d")
    ax.set_ylabel("%")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9)
    _period_axis(ax, frame.index)
    fig.tight_layout()
    return _png(fig)


def stacked_counts(frame: pd.DataFrame, ylabel: str) -> bytes:
    """Stacked bars: index periods, one column per series (e.g. labeler@version), values counts."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    x = np.arange(len(frame.index))
    bottom = np.zeros(len(frame.index))
    cmap = plt.get_cmap("tab10")
    for k, column in enumerate(frame.columns):
        values = frame[column].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, label=str(column), color=cmap(k % 10))
        bottom += values
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _period_axis(ax, frame.index)
    fig.tight_layout()
    return _png(fig)


def transitions(matrices: dict[str, np.ndarray], classes: Sequence[str], name_a: str, name_b: str) -> bytes:
    """One 4x4 heatmap per observation: rows A's class, columns B's class, cells counts (diagonal = agreement)."""
    names = list(matrices)
    cols = 5
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(15, 3.1 * rows), squeeze=False)
    short = [c[:3] for c in classes]
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        matrix = matrices[name]
        off = matrix.astype(float).copy()
        np.fill_diagonal(off, np.nan)  # colour what changed; agreement is the (uncoloured) diagonal
        vmax = max(1.0, float(np.nanmax(off)) if not np.all(np.isnan(off)) else 1.0)
        ax.imshow(off, cmap="Reds", vmin=0, vmax=vmax)
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if i != j and matrix[i, j] > 0.6 * vmax else "black")
        ax.set_xticks(range(len(classes)), short, fontsize=7)
        ax.set_yticks(range(len(classes)), short, fontsize=7)
        ax.set_title(name, fontsize=9)
        if k % cols == 0:
            ax.set_ylabel(name_a, fontsize=8)
        ax.set_xlabel(name_b, fontsize=8)
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    return _png(fig)
