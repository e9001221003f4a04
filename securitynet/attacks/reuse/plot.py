"""The model-reuse figure: per entry, the target image beside its class scores on the host
built over the benign primitive and on the host built over the malicious one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ReusePanel:
    """One row of the figure."""

    title: str
    image: np.ndarray  #: H x W x C uint8
    benign: Sequence[float]
    malicious: Sequence[float]
    target_class: int
    classes: Sequence[str] | None = None


def plot_reuse(panels: Sequence[ReusePanel], path: Path) -> Path:
    """Write the rows of ``panels`` to ``path`` (format from the suffix)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(panels), 2, figsize=(8.0, 2.8 * len(panels)), dpi=120,
        gridspec_kw={"width_ratios": [1, 3]}, squeeze=False,
    )
    for (img_ax, bar_ax), panel in zip(axes, panels, strict=True):
        image = panel.image
        if image.shape[2] == 1:
            img_ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            img_ax.imshow(image)
        img_ax.set_axis_off()
        img_ax.set_title(panel.title, fontsize=7)
        n = len(panel.benign)
        x = np.arange(n)
        bar_ax.bar(x - 0.2, panel.benign, width=0.4, label="benign primitive", color="tab:blue")
        bar_ax.bar(x + 0.2, panel.malicious, width=0.4, label="malicious primitive", color="tab:red")
        bar_ax.axvline(panel.target_class, color="grey", linestyle=":", linewidth=0.8)
        bar_ax.set_xticks(x)
        bar_ax.set_xticklabels(
            list(panel.classes) if panel.classes else [str(i) for i in x], fontsize=7, rotation=30
        )
        bar_ax.set_ylim(0, 1)
        bar_ax.set_ylabel("host's class probability", fontsize=8)
        bar_ax.set_title(f"target class {panel.target_class} (dotted)", fontsize=8)
        bar_ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
