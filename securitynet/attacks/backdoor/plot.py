"""The reversed triggers of a Neural Cleanse scan as one PNG grid: ``mask * pattern`` per
label, titled with its L1 norm and anomaly index, flagged labels framed in red."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from securitynet.attacks.backdoor.cleanse import CleanseResult


def save_trigger_grid(
    result: CleanseResult,
    path: Path,
    *,
    class_names: tuple[str, ...] | None = None,
    columns: int = 5,
) -> Path:
    """Write the grid to ``path`` (format from the suffix) and return it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    triggers = (result.masks * result.patterns).detach().float()
    low, high = float(triggers.min()), float(triggers.max())
    scaled = (triggers - low) / (high - low) if high > low else triggers * 0
    n = len(result.labels)
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.5 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    flagged = set(result.flagged)
    for i, label in enumerate(result.labels):
        ax = axes.flat[i]
        image = scaled[i].permute(1, 2, 0).numpy()
        if image.shape[2] == 1:
            ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image)
        name = class_names[label] if class_names is not None else str(label)
        hit = label in flagged
        ax.set_title(
            f"{name}{' FLAGGED' if hit else ''}\n|m|={result.norms[i]:.1f} a={result.anomaly_index[i]:.2f}",
            fontsize=7,
            color="red" if hit else "black",
        )
        if hit:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    fig.suptitle("Neural Cleanse: reversed triggers (mask x pattern)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["save_trigger_grid"]
