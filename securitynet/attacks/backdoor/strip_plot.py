"""The STRIP figure: per net, histograms of the entropies of held-out clean inputs and of
triggered ones, with the rejection threshold. Triggered inputs of a backdoored net pile up
left of the threshold; a clean net's overlap the clean ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StripPanel:
    """One net's entropies (nats) and threshold."""

    clean: Sequence[float]
    triggered: Sequence[float] | None
    threshold: float


def plot_strip(panels: Mapping[str, StripPanel], path: Path) -> Path:
    """Write one histogram panel per ``{title: panel}`` to ``path`` (format from the suffix)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = max(1, len(panels))
    fig, axes = plt.subplots(n, 1, figsize=(6.0, 2.6 * n), dpi=120, squeeze=False)
    for ax, (title, panel) in zip(axes[:, 0], panels.items(), strict=False):
        values = [np.asarray(panel.clean)]
        if panel.triggered is not None:
            values.append(np.asarray(panel.triggered))
        top = max(float(v.max()) for v in values)
        bins = np.linspace(0.0, max(top, panel.threshold) * 1.05 + 1e-9, 40)
        ax.hist(values[0], bins=bins, alpha=0.6, label=f"clean ({len(values[0])})")
        if len(values) > 1:
            ax.hist(values[1], bins=bins, alpha=0.6, label=f"triggered ({len(values[1])})")
        ax.axvline(panel.threshold, color="black", linestyle="--", linewidth=1.0, label="threshold")
        ax.set_xlabel("entropy of superimposed predictions (nats)")
        ax.set_ylabel("inputs")
        ax.set_title(title, fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
