"""How many entries there are, and how their top-1 accuracy spreads, per data set, source,
family, licence or architecture; and the same as a picture.

    >>> accuracy_stats(cat, by="dataset")             # a DataFrame, one row per data set
    >>> plot_accuracy(cat, "acc.pdf", by="family")    # box + strip plot, one panel per data set

``top1`` is each entry's best top-1 claim on its own final training data set, so grouping by
data set compares like with like; grouping by source or family mixes data sets (the CIFAR-10
and ImageNet-1k entries of one family land in one group). The SQL views
``v_entries_per_*`` and ``v_accuracy_per_dataset`` give the same figures to SQL users.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from securitynet.errors import InvalidQueryError

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


def check_by(by: str) -> str:
    """The grouping key ``by`` names, or :class:`InvalidQueryError`."""
    return _check_by(by)


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
    """:func:`summarise` over the entries matching ``filters`` (those of ``Catalogue.search``).

    Without a filter that changes which entries count, the figures are those stored at the
    last write (:mod:`securitynet.catalogue.stats_table`): no scan of the entries."""
    from securitynet.catalogue.stats_table import has_statistics, read_statistics

    by = _check_by(by)
    if all(v is None or v is False for v in filters.values()) and has_statistics(catalogue.engine):
        return read_statistics(catalogue.engine, by)
    frame = catalogue.to_dataframe(columns=(by, "top1"), ordered=False, **filters)
    return summarise(frame, by)


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
    order: str = "median",
    title: str | None = None,
    **filters: Any,
) -> Path:
    """Draw top-1 per group to ``path`` (see :mod:`securitynet.catalogue.plots`: one panel per
    data set, groups ordered by ``order``, no title unless given); the format follows the
    file's extension (PNG when it has none). Returns the path written."""
    from securitynet.catalogue.plots import plot_frame

    frame = catalogue.to_dataframe(**filters)
    return plot_frame(frame, path, by=by, max_groups=max_groups, order=order, title=title).path
