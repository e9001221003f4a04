"""The ROC figure of a membership evaluation: every attack's curve on log-log axes, where
the low-FPR region that matters is visible (LiRA's presentation), with the chance line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def plot_roc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, *, title: str = ""
) -> Path:
    """Write the ROC curves ``{attack: (fpr, tpr)}`` to ``path`` (format from the suffix)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    floor = 1e-5
    for name, (fpr, tpr) in curves.items():
        ax.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=name, linewidth=1.2)
    ax.plot([floor, 1], [floor, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor * 10, 1)
    ax.set_ylim(floor * 10, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
