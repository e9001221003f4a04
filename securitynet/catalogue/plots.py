"""Top-1 per group as a figure a paper can use: a box per group over its points.

    >>> plot_frame(cat.to_dataframe(), "acc.pdf", by="family")   # one panel per data set

Rules that keep the picture honest:

- **Data sets are never pooled.** ``top1`` is each entry's figure on its own training data
  set, so a group that spans CIFAR-10 and ImageNet-1k mixes incomparable numbers (pyramidnet
  "ranks first" on its CIFAR entries). Grouped by anything but the data set, the figure has
  one panel per data set (the largest :data:`MAX_PANELS`, the others named as left out);
  filter with ``dataset=`` for a single panel.
- **Groups are ordered by what is asked** (``order``: ``median``, ``mean``, ``max``,
  ``count`` or ``name``), best at the top.
- **When groups are cut** (more than ``max_groups``), the best by that order are kept and the
  cut ones are named in the result, not silently dropped.
- **No title in the figure** unless one is given: a caption belongs to the paper.
- The format follows the file's extension: ``.png`` (raster), ``.svg``, ``.pdf``, ``.eps``
  (vector, text kept as text in SVG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securitynet.errors import InvalidQueryError, SecurityNetError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from securitynet.records import ResultRecord

#: How groups can be ordered, and what each means.
ORDERS: dict[str, str] = {
    "median": "median top-1, best at the top",
    "mean": "mean top-1, best at the top",
    "max": "best top-1, best at the top",
    "count": "entries with a top-1, most at the top",
    "name": "name, A at the top",
}
#: At most this many data-set panels in one figure.
MAX_PANELS = 6
UNKNOWN_GROUP = "(unknown)"
#: Points drawn per group's strip (a larger group shows a fixed random sample; its box
#: still summarises every value), so a figure of a million entries stays a small file.
MAX_POINTS = 1000


@dataclass
class PlotSummary:
    """What a figure shows and what it left out."""

    path: Path
    panels: list[str] = field(default_factory=list)  # data sets, one panel each
    shown: dict[str, list[str]] = field(default_factory=dict)  # panel -> groups, top first
    cut: dict[str, list[str]] = field(default_factory=dict)  # panel -> groups left out
    panels_cut: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per thing left out, for the user to read."""
        lines = []
        for panel, groups in self.cut.items():
            kept = len(self.shown.get(panel, []))
            where = f" in {panel}" if len(self.panels) > 1 else ""
            names = ", ".join(groups[:8]) + (
                f" and {len(groups) - 8} more" if len(groups) > 8 else ""
            )
            lines.append(f"{len(groups)} of {kept + len(groups)} groups{where} left out: {names}")
        if self.panels_cut:
            lines.append(
                f"{len(self.panels_cut)} smaller data sets not drawn: {', '.join(self.panels_cut)} "
                "(--dataset draws one)"
            )
        return lines


def _shorten(label: str, width: int = 36) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _rank_key(order: str, values: Any, name: str) -> tuple[Any, ...]:
    """Sort key, best first."""
    import numpy as np

    if order == "name":
        return (name,)
    figure = {
        "median": lambda v: float(np.median(v)),
        "mean": lambda v: float(np.mean(v)),
        "max": lambda v: float(np.max(v)),
        "count": lambda v: float(len(v)),
    }[order](values)
    return (-figure, -len(values), name)


def plot_frame(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    by: str = "dataset",
    max_groups: int = 25,
    order: str = "median",
    title: str | None = None,
) -> PlotSummary:
    """Draw top-1 per ``by`` group of ``frame`` (rows of ``Catalogue.to_dataframe``) to
    ``path``; see the module docstring for the rules. Returns what was drawn and left out."""
    from securitynet.catalogue.stats import STATS_BY, check_by

    by = check_by(by)
    return _plot_groups(
        frame,
        path,
        by=by,
        value="top1",
        xlabel=f"top-1 accuracy (%) per {STATS_BY[by]}",
        empty="no entry here has a top-1 claim to plot",
        max_groups=max_groups,
        order=order,
        title=title,
    )


def plot_results(
    results: Sequence[ResultRecord],
    path: str | Path,
    *,
    max_groups: int = 25,
    order: str = "median",
    title: str | None = None,
) -> PlotSummary:
    """Draw evaluation figures (rows of ``v_results``, one metric) per variant and source,
    one panel per data set, by the same rules as :func:`plot_frame` (figures of different
    data sets are never pooled)."""
    import pandas as pd

    metrics = sorted({r.metric for r in results})
    if len(metrics) > 1:
        raise InvalidQueryError(
            f"one metric per figure, not {len(metrics)} ({', '.join(metrics[:4])}...)",
            hint="Pick one with metric=.",
        )
    frame = pd.DataFrame(
        {
            "dataset": [r.dataset for r in results],
            "group": [f"{r.variant or r.attack} ({r.source})" for r in results],
            "value": [r.value for r in results],
        },
        dtype=object,
    )
    frame["value"] = frame["value"].astype(float)
    attack = results[0].attack if results else "attack"
    return _plot_groups(
        frame,
        path,
        by="group",
        value="value",
        xlabel=f"{attack} {metrics[0] if metrics else ''} per variant (source)",
        empty="no evaluation figure here to plot",
        max_groups=max_groups,
        order=order,
        title=title,
        panel_title="evaluated on {}",
        label_width=48,
    )


def _plot_groups(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    by: str,
    value: str,
    xlabel: str,
    empty: str,
    max_groups: int,
    order: str,
    title: str | None,
    panel_title: str = "trained on {}",
    label_width: int = 36,
) -> PlotSummary:
    from matplotlib.figure import Figure

    order = order.strip().lower()
    if order not in ORDERS:
        raise InvalidQueryError(
            f"cannot order groups by {order!r}",
            hint=f"Order by one of: {', '.join(ORDERS)}.",
            value=order,
        )
    if max_groups < 1:
        raise InvalidQueryError("max_groups must be at least 1", value=max_groups)
    rated = frame.loc[frame[value].notna()]
    if rated.empty:
        raise InvalidQueryError(empty, hint="Loosen the filters.")

    def label(value: Any) -> str:
        return UNKNOWN_GROUP if value is None or value != value else str(value)  # NaN != NaN

    summary = PlotSummary(path=Path(path))
    if by == "dataset":
        panels = {"": rated}
    else:
        per_dataset = {
            label(k): g
            for k, g in rated.groupby(rated["dataset"].astype(object).map(label), sort=False)
        }
        ranked = sorted(per_dataset, key=lambda d: (-len(per_dataset[d]), d))
        summary.panels_cut = ranked[MAX_PANELS:]
        panels = {d: per_dataset[d] for d in ranked[:MAX_PANELS]}
    summary.panels = [p for p in panels if p]

    drawn: list[tuple[str, list[str], dict[str, Any]]] = []
    for panel, rows in panels.items():
        groups = {
            label(name): values.to_numpy(dtype=float)
            for name, values in rows.groupby(rows[by].astype(object).map(label), sort=False)[value]
        }
        ranked_groups = sorted(groups, key=lambda g: _rank_key(order, groups[g], g))
        kept, cut = ranked_groups[:max_groups], ranked_groups[max_groups:]
        summary.shown[panel or "all"] = kept
        if cut:
            summary.cut[panel or "all"] = cut
        drawn.append((panel, kept, groups))

    height = sum(0.9 + 0.32 * len(kept) for _, kept, _ in drawn) + (0.4 if title else 0.0)
    fig = Figure(figsize=(8.0, max(2.4, height)), layout="constrained")
    ratios = [max(1, len(kept)) + 2 for _, kept, _ in drawn]
    axes = fig.subplots(len(drawn), 1, squeeze=False, gridspec_kw={"height_ratios": ratios})[:, 0]
    for ax, (panel, kept, groups) in zip(axes, drawn, strict=True):
        _draw_panel(ax, kept, groups, label_width)
        if panel:
            ax.set_title(panel_title.format(panel), loc="left", fontsize="medium")
    axes[-1].set_xlabel(xlabel)
    if title:
        fig.suptitle(title, x=0.01, ha="left")

    out = summary.path
    fmt = out.suffix.lstrip(".").lower() or "png"
    import matplotlib

    # text stays text in vector files (editable, searchable); TrueType fonts in PDF
    vector_text: dict[Any, Any] = {
        "svg.fonttype": "none",
        "svg.hashsalt": "securitynet",
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
    }
    try:
        with matplotlib.rc_context(vector_text):
            fig.savefig(out, dpi=200, format=fmt, metadata=_metadata(fmt))
    except ValueError as exc:  # an extension matplotlib does not write
        raise InvalidQueryError(
            f"cannot draw {out.name}: {exc}", hint="Name the file .png, .svg or .pdf."
        ) from exc
    except OSError as exc:
        raise SecurityNetError(f"cannot write {out}: {exc.strerror}", path=str(out)) from exc
    return summary


def _metadata(fmt: str) -> dict[str, Any] | None:
    """No creation date in vector files: the same data gives the same bytes."""
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return None


def _draw_panel(ax: Any, kept: list[str], groups: dict[str, Any], label_width: int = 36) -> None:
    import numpy as np

    top_down = list(reversed(kept))  # the best group at the top of the axis
    data = [groups[g] for g in top_down]
    positions = np.arange(1, len(top_down) + 1)
    ax.boxplot(
        data,
        positions=positions,
        orientation="horizontal",
        widths=0.6,
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "#dbe7f3", "edgecolor": "#35608a"},
        medianprops={"color": "#c2410c", "linewidth": 2},
        whiskerprops={"color": "#35608a"},
        capprops={"color": "#35608a"},
    )
    rng = np.random.default_rng(0)  # the same jitter every time: the same picture for the same data
    for pos, values in zip(positions, data, strict=True):
        alpha = min(0.6, 8 / np.sqrt(len(values)))  # fainter points where they crowd
        if len(values) > MAX_POINTS:  # the box has every value; the strip a fixed sample
            values = rng.choice(values, MAX_POINTS, replace=False)
        ax.scatter(
            values,
            pos + rng.uniform(-0.2, 0.2, len(values)),
            s=9,
            alpha=alpha,
            color="#1f2937",
            linewidths=0,
        )
    ax.set_yticks(positions, [f"{_shorten(g, label_width)}  (n={len(groups[g])})" for g in top_down])
    ax.grid(axis="x", linestyle=":", alpha=0.6)
