"""The "agreement against budget" figure of a stealing evaluation: the surrogate's accuracy
and its agreement with the target against the query budget (log axis), the median over
seeds as a line and the seeds' range as a band, with published figures beside ours.

Each drawn artist carries an SVG id (``<panel>-<series>``, ``<panel>-<series>-range``,
``<panel>-public``), so an SVG figure can be read back."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from securitynet.errors import AttackError

#: Figure formats by file suffix (matplotlib writes each without extra dependencies).
FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class BudgetPoint:
    """One budget of one series: medians over seeds and the seeds' range (percent)."""

    budget: int
    agreement: float
    accuracy: float
    agreement_range: tuple[float, float] | None = None
    accuracy_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class PublicFigure:
    """A published figure at one budget: agreement, and accuracy when stated (percent)."""

    budget: int
    agreement: float
    accuracy: float | None = None


def parse_public(text: str) -> list[PublicFigure]:
    """``"500=89.62/89.16,1000=94.02"`` -> budget, agreement[/accuracy] per item."""
    figures = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"(\d+)\s*=\s*([\d.]+)\s*(?:/\s*([\d.]+))?", item)
        if match is None:
            raise AttackError(
                f"public figure {item!r} is not BUDGET=AGREEMENT[/ACCURACY], e.g. 1000=93.13/92.64"
            )
        try:
            values = [float(v) for v in match.groups()[1:] if v is not None]
        except ValueError as exc:
            raise AttackError(f"public figure {item!r}: {exc}") from exc
        if not all(0 <= v <= 100 for v in values) or int(match[1]) <= 0:
            raise AttackError(f"public figure {item!r}: a positive budget and percentages in [0, 100]")
        figures.append(
            PublicFigure(int(match[1]), values[0], values[1] if len(values) > 1 else None)
        )
    return sorted(figures, key=lambda f: f.budget)


def slug(name: str) -> str:
    """``name`` as an SVG id fragment."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "series"


def plot_budget_curves(
    series: Mapping[str, Sequence[BudgetPoint]],
    path: Path,
    *,
    public: Sequence[PublicFigure] = (),
    public_label: str = "public",
    title: str = "",
) -> Path:
    """Write accuracy and agreement against budget for every series to ``path`` (PNG, SVG
    or PDF by suffix)."""
    if path.suffix.lower() not in FORMATS:
        raise AttackError(f"cannot write a figure to {path.name}: use {', '.join(FORMATS)}")
    if not any(series.values()):
        raise AttackError("no budgets to plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2), dpi=120, sharex=True)
    for ax, panel in zip(axes, ("accuracy", "agreement"), strict=True):
        for name, points in series.items():
            points = sorted(points, key=lambda p: p.budget)
            budgets = [p.budget for p in points]
            medians = [getattr(p, panel) for p in points]
            (line,) = ax.plot(budgets, medians, marker="o", linewidth=1.4, label=f"{name} (median)")
            line.set_gid(f"{panel}-{slug(name)}")
            ranged = [(p.budget, getattr(p, f"{panel}_range")) for p in points]
            ranged = [(b, r) for b, r in ranged if r is not None]
            if ranged:
                band = ax.fill_between(
                    [b for b, _ in ranged],
                    [r[0] for _, r in ranged],
                    [r[1] for _, r in ranged],
                    alpha=0.2,
                    color=line.get_color(),
                    label=f"{name} (seed range)",
                )
                band.set_gid(f"{panel}-{slug(name)}-range")
        shown = [f for f in public if getattr(f, panel) is not None]
        if shown:
            (marks,) = ax.plot(
                [f.budget for f in shown],
                [getattr(f, panel) for f in shown],
                linestyle="--",
                marker="s",
                color="black",
                linewidth=1.0,
                label=public_label,
            )
            marks.set_gid(f"{panel}-public")
        ax.set_xscale("log")
        ax.set_xlabel("queries (budget)")
        ax.set_ylabel(f"{panel} (%)")
        ax.set_title(f"surrogate {panel}" if panel == "accuracy" else "agreement with the target")
        ax.grid(True, which="both", linewidth=0.3, alpha=0.6)
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
