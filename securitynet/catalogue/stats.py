"""How many entries there are, and how their top-1 accuracy spreads, per data set, source,
family, licence or architecture; and the same as a picture.

    >>> accuracy_stats(cat, by="dataset")             # a DataFrame, one row per data set
    >>> plot_accuracy(cat, "acc.png", by="dataset")   # box + strip plot of top-1 per data set

``top1`` is each entry's best top-1 claim on its own final training data set, so grouping by
data set compares like with like; grouping by source or family mixes data sets (the CIFAR-10
and ImageNet-1k entries of one family land in one group). The SQL views
``v_entries_per_*`` and ``v_accuracy_per_dataset`` give the same figures to SQL users.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from securitynet.errors import InvalidQueryError, SecurityNetError

if TYPE_CHECKING:
    import pandas as pd

    from securitynet.catalogue.api import Catalogue

#: What ``--by`` accepts, and how a plot names it.
STATS_BY: dict[str, str] = {
    "dataset": "training data set",
    "source": "source",
    "family": "family",
    "licence": "licence",
    "architecture": "architecture",
}
STAT_COLUMNS = (
    "entries",
    "with_top1",
    "top1_min",
    "top1_q1",
    "top1_median",
    "top1_q3",
    "top1_max",
    "top1_mean",
)
UNKNOWN_GROUP = "(unknown)"


def _check_by(by: str) -> str:
    key = by.strip().lower()
    if key not in STATS_BY:
        raise InvalidQueryError(
            f"cannot group by {by!r}", hint=f"Group by one of: {', '.join(STATS_BY)}.", value=by
        )
    return key


def summarise(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group of ``frame[by]`` (missing values form their own group): entries, entries
    with a top-1, and top-1 min / quartiles / max / mean. Largest groups first."""
    import pandas as pd

    by = _check_by(by)
    # an empty frame (an empty catalogue, no match) has an object column: numbers it is
    frame = frame.assign(top1=pd.to_numeric(frame["top1"], errors="coerce").astype("float64"))
    top1 = frame.groupby(by, dropna=False, sort=False)["top1"]
    out = pd.DataFrame(
        {
            "entries": top1.size(),
            "with_top1": top1.count(),
            "top1_min": top1.min(),
            "top1_q1": top1.quantile(0.25),
            "top1_median": top1.median(),
            "top1_q3": top1.quantile(0.75),
            "top1_max": top1.max(),
            "top1_mean": top1.mean(),
        }
    ).reset_index()
    out = out.sort_values(
        ["entries", by], ascending=[False, True], na_position="last", kind="stable"
    )
    return out.astype({"entries": "int64", "with_top1": "int64"}).reset_index(drop=True)


def accuracy_stats(catalogue: Catalogue, *, by: str = "dataset", **filters: Any) -> pd.DataFrame:
    """:func:`summarise` over the entries matching ``filters`` (those of ``Catalogue.search``)."""
    by = _check_by(by)
    return summarise(catalogue.to_dataframe(**filters), by)


#: What the catalogue holds, per source (the view ``v_entries_per_source``).
OVERVIEW_QUERY = "SELECT * FROM v_entries_per_source ORDER BY entries DESC, source"


def catalogue_overview(catalogue: Catalogue) -> pd.DataFrame:
    """What the catalogue holds, per source (the view ``v_entries_per_source``)."""
    import pandas as pd

    query = text(OVERVIEW_QUERY)
    with catalogue.engine.connect() as conn:
        return pd.read_sql(query, conn)


def plot_accuracy(
    catalogue: Catalogue,
    path: str | Path,
    *,
    by: str = "dataset",
    max_groups: int = 25,
    **filters: Any,
) -> Path:
    """Draw top-1 per group (a box per group over its points) to ``path``; the format follows
    the file's extension (PNG when it has none). Returns the path written."""
    return plot_frame(catalogue.to_dataframe(**filters), path, by=by, max_groups=max_groups)


def _shorten(label: str, width: int = 36) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def plot_frame(
    frame: pd.DataFrame, path: str | Path, *, by: str = "dataset", max_groups: int = 25
) -> Path:
    import numpy as np
    from matplotlib.figure import Figure

    by = _check_by(by)
    if max_groups < 1:
        raise InvalidQueryError("max_groups must be at least 1", value=max_groups)
    rated = frame.loc[frame["top1"].notna(), [by, "top1"]]
    if rated.empty:
        raise InvalidQueryError(
            "no entry here has a top-1 claim to plot", hint="Loosen the filters."
        )
    rated = rated.assign(**{by: rated[by].astype(object).where(rated[by].notna(), UNKNOWN_GROUP)})
    groups = {
        name: values.to_numpy(dtype=float) for name, values in rated.groupby(by, sort=False)["top1"]
    }
    # the largest groups, drawn best median at the top
    kept = sorted(groups, key=lambda g: (-len(groups[g]), str(g)))[:max_groups]
    kept.sort(key=lambda g: (float(np.median(groups[g])), str(g)))
    data = [groups[g] for g in kept]
    positions = np.arange(1, len(kept) + 1)

    fig = Figure(figsize=(9.0, 1.6 + 0.36 * len(kept)), layout="constrained")
    ax = fig.add_subplot()
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
        ax.scatter(
            values,
            pos + rng.uniform(-0.2, 0.2, len(values)),
            s=9,
            alpha=alpha,
            color="#1f2937",
            linewidths=0,
        )
    ax.set_yticks(positions, [f"{_shorten(str(g))}  (n={len(groups[g])})" for g in kept])
    ax.set_xlabel("top-1 accuracy (%)")
    ax.grid(axis="x", linestyle=":", alpha=0.6)
    notes = []
    if len(groups) > len(kept):
        notes.append(f"the {len(kept)} largest of {len(groups)} groups")
    if by != "dataset":
        notes.append("each entry's best top-1 on its own training data set")
    title = f"Top-1 accuracy per {STATS_BY[by]}" + (f"\n({'; '.join(notes)})" if notes else "")
    fig.suptitle(title, x=0.01, ha="left")

    out = Path(path)
    try:
        fig.savefig(out, dpi=150, format=out.suffix.lstrip(".").lower() or "png")
    except ValueError as exc:  # an extension matplotlib does not write
        raise InvalidQueryError(
            f"cannot draw {out.name}: {exc}", hint="Name the file .png, .svg or .pdf."
        ) from exc
    except OSError as exc:
        raise SecurityNetError(f"cannot write {out}: {exc.strerror}", path=str(out)) from exc
    return out
