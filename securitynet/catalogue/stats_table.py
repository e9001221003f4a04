"""Statistics stored at write time: entries and the spread of top-1 per group.

Quartiles need every value of a group in order; computed per question they cost a sort of
the whole catalogue (seconds at a million entries, on SQLite more than pandas needs).
:func:`refresh_statistics` computes them once after a write that changed entries (a sync,
an import, ``Catalogue.add``) into ``accuracy_statistics``, for each grouping ``stats``
offers, over the entries counted by default (live, each checkpoint once, no test nets);
``stats`` without filters and the view ``v_accuracy_per_dataset`` read that table.

Memory stays bounded by a batch: PostgreSQL computes the quartiles itself
(``percentile_cont`` over ``GROUPING SETS``: one scan for every grouping); SQLite copies the six narrow columns of the counted entries into a
temporary table once (its pages spill to disk like any table's), then one ordered scan per
grouping streams ``(group, top1)`` in batches and keeps only the values at the quartile
positions.

    >>> refresh_statistics(cat.engine)             # after writing entries
    >>> read_statistics(cat.engine, "family")      # a DataFrame, as stats.summarise gives it
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

#: The groupings stored (``stats --by``), each an ``entry`` column of the same name.
GROUPINGS: tuple[str, ...] = ("dataset", "source", "family", "licence", "architecture")
#: The entries counted by default, as in the counting views (migration 0005).
COUNTED = "NOT removed_upstream AND NOT test_net AND same_weights_as IS NULL"
FIGURES = ("top1_min", "top1_q1", "top1_median", "top1_q3", "top1_max", "top1_mean")
COLUMNS = ("grouping", "value", "entries", "with_top1", *FIGURES, "refreshed_at")
BATCH = 20_000

_INSERT = text(
    f"INSERT INTO accuracy_statistics ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in COLUMNS)})"
)


def _postgresql_insert() -> str:
    """Every grouping in one scan of ``entry`` (``GROUPING SETS``); ``GROUPING(key) = 0``
    names the grouping a row belongs to, so a NULL group stays apart from the others."""
    which = " ".join(f"WHEN GROUPING({key}) = 0 THEN {{}}" for key in GROUPINGS[:-1])
    grouping = f"CASE {which.format(*(repr(k) for k in GROUPINGS[:-1]))} ELSE '{GROUPINGS[-1]}' END"
    value = f"CASE {which.format(*GROUPINGS[:-1])} ELSE {GROUPINGS[-1]} END"
    sets = ", ".join(f"({key})" for key in GROUPINGS)
    return f"""
        INSERT INTO accuracy_statistics ({', '.join(COLUMNS)})
        SELECT {grouping}, {value}, COUNT(*), COUNT(top1), MIN(top1),
               percentile_cont(0.25) WITHIN GROUP (ORDER BY top1),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY top1),
               percentile_cont(0.75) WITHIN GROUP (ORDER BY top1),
               MAX(top1), AVG(top1), :now
        FROM entry WHERE {COUNTED} GROUP BY GROUPING SETS ({sets})
    """


def refresh_statistics(engine: Engine) -> float:
    """Recompute ``accuracy_statistics`` from ``entry`` in one transaction (readers see the
    old rows or the new ones); returns the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM accuracy_statistics"))
        if conn.dialect.name == "postgresql":
            conn.execute(text(_postgresql_insert()), {"now": now})
        else:  # the wide entry rows read once, into a narrow temporary table to sort five ways
            conn.execute(text("DROP TABLE IF EXISTS temp.counted_top1"))
            conn.execute(
                text(
                    f"CREATE TEMP TABLE counted_top1 AS SELECT {', '.join(GROUPINGS)}, top1 "
                    f"FROM entry WHERE {COUNTED}"
                )
            )
            for key in GROUPINGS:
                rows = [{**row, "grouping": key, "refreshed_at": now} for row in _streamed(conn, key)]
                if rows:
                    conn.execute(_INSERT, rows)
            conn.execute(text("DROP TABLE temp.counted_top1"))
    seconds = time.perf_counter() - started
    log.info("statistics refreshed in %.2f s", seconds)
    return seconds


def _streamed(conn: Connection, key: str) -> Iterator[dict[str, Any]]:
    """One row per value of ``key`` over ``counted_top1``: counts, min / max / mean from one
    aggregate, quartiles from one scan of ``(key, top1)`` in order, ``BATCH`` rows at a time."""
    sizes = {
        value: {
            "value": value,
            "entries": int(entries),
            "with_top1": int(with_top1),
            "top1_min": low,
            "top1_max": high,
            "top1_mean": mean,
        }
        for value, entries, with_top1, low, high, mean in conn.execute(
            text(
                f"SELECT {key}, COUNT(*), COUNT(top1), MIN(top1), MAX(top1), AVG(top1) "
                f"FROM counted_top1 GROUP BY {key}"
            )
        )
    }
    cursor = conn.execute(
        text(
            f"SELECT {key}, top1 FROM counted_top1 WHERE top1 IS NOT NULL ORDER BY {key}, top1"
        )
    ).cursor
    current: object = object()
    wanted: dict[int, float] = {}
    index = 0
    while batch := cursor.fetchmany(BATCH):
        for value, top1 in batch:
            if value != current:
                current, index = value, 0
                wanted = _positions(sizes[value]["with_top1"])
            if index in wanted:
                wanted[index] = top1
                if index == max(wanted):
                    _settle(sizes[value], wanted)
            index += 1
    for row in sizes.values():
        row.setdefault("top1_q1", None)
        row.setdefault("top1_median", None)
        row.setdefault("top1_q3", None)
        yield row


def _positions(n: int) -> dict[int, float]:
    """The 0-based ranks whose values the quartiles of ``n`` sorted values interpolate."""
    ranks: set[int] = set()
    for q in (0.25, 0.5, 0.75):
        pos = (n - 1) * q
        ranks.update({math.floor(pos), min(math.floor(pos) + 1, n - 1)})
    return dict.fromkeys(sorted(ranks), math.nan)


def _settle(row: dict[str, Any], values: dict[int, float]) -> None:
    """Linear interpolation between the two nearest ranks (pandas' and ``percentile_cont``'s
    rule), from the values found at :func:`_positions`."""
    n = row["with_top1"]
    for name, q in (("top1_q1", 0.25), ("top1_median", 0.5), ("top1_q3", 0.75)):
        pos = (n - 1) * q
        low = math.floor(pos)
        high = min(low + 1, n - 1)
        frac = pos - low
        row[name] = values[low] + (values[high] - values[low]) * frac


def has_statistics(engine: Engine) -> bool:
    """Whether ``accuracy_statistics`` holds a refresh (an empty catalogue holds none)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM accuracy_statistics LIMIT 1")).first() is not None


def read_statistics(engine: Engine, by: str) -> pd.DataFrame:
    """The stored figures of grouping ``by`` as :func:`securitynet.catalogue.stats.summarise`
    shapes them: one row per group, largest first."""
    import pandas as pd

    from securitynet.catalogue.stats import STAT_COLUMNS

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT value, {', '.join(STAT_COLUMNS)} FROM accuracy_statistics "
                "WHERE grouping = :by"
            ),
            {"by": by},
        ).all()
    frame = pd.DataFrame.from_records(rows, columns=[by, *STAT_COLUMNS], coerce_float=True)
    frame = frame.astype(
        {"entries": "int64", "with_top1": "int64"} | {c: "float64" for c in FIGURES}
    )
    frame = frame.sort_values(
        ["entries", by], ascending=[False, True], na_position="last", kind="stable"
    )
    return frame.reset_index(drop=True)
