"""statistics table: entries and top-1 quartiles per group, refreshed at write time

- ``accuracy_statistics``: one row per value of each grouping ``stats`` offers (``dataset``,
  ``source``, ``family``, ``licence``, ``architecture``) over the entries counted by default
  (live, each checkpoint once, no test nets): ``entries``, ``with_top1`` and the top-1 min,
  quartiles, max and mean. The catalogue refreshes it after a write that changed entries
  (``securitynet.catalogue.stats_table``); here it is filled once from what ``entry`` holds.
- ``v_accuracy_per_dataset`` keeps its columns and reads that table instead of sorting every
  entry per query (7.8 s on a million entries on SQLite, 4.5 s on PostgreSQL).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
# 0006 (browse indexes) is written beside this one; until it lands the chain is 0005 -> 0007
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUPINGS = ("dataset", "source", "family", "licence", "architecture")
COUNTED = "NOT removed_upstream AND NOT test_net AND same_weights_as IS NULL"
COLUMNS = (
    "grouping, value, entries, with_top1, top1_min, top1_q1, top1_median, top1_q3, top1_max, "
    "top1_mean, refreshed_at"
)

V_ACCURACY = """
        SELECT value AS dataset,
               with_top1 AS entries,
               top1_min,
               top1_q1,
               top1_median,
               top1_q3,
               top1_max,
               top1_mean
        FROM accuracy_statistics
        WHERE grouping = 'dataset' AND with_top1 > 0
"""


def _quantile(q_num: int, q_den: int) -> str:
    """Linear-interpolated quantile over ``ranked`` (ranks 1..n hold the non-NULL values)."""
    lo = f"((n - 1) * {q_num}) / {q_den}"
    frac = f"(((n - 1) * {q_num}) % {q_den}) / {float(q_den)}"
    return (
        f"CASE WHEN MAX(n) > 0 THEN SUM(CASE WHEN rn = {lo} + 1 THEN top1 * (1 - {frac}) "
        f"WHEN rn = {lo} + 2 THEN top1 * {frac} ELSE 0 END) END"
    )


def _fill_select(key: str, postgres: bool) -> str:
    if postgres:
        return f"""
            SELECT '{key}', {key}, COUNT(*), COUNT(top1), MIN(top1),
                   percentile_cont(0.25) WITHIN GROUP (ORDER BY top1),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY top1),
                   percentile_cont(0.75) WITHIN GROUP (ORDER BY top1),
                   MAX(top1), AVG(top1), CURRENT_TIMESTAMP
            FROM entry WHERE {COUNTED} GROUP BY {key}
        """
    return f"""
        WITH ranked AS (
            SELECT {key} AS value, top1,
                   ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY top1 IS NULL, top1) AS rn,
                   COUNT(top1) OVER (PARTITION BY {key}) AS n
            FROM entry WHERE {COUNTED}
        )
        SELECT '{key}', value, COUNT(*), COUNT(top1), MIN(top1),
               {_quantile(1, 4)}, {_quantile(1, 2)}, {_quantile(3, 4)},
               MAX(top1), AVG(top1), datetime('now')
        FROM ranked GROUP BY value
    """


def _previous_view() -> str:
    """0005's ``v_accuracy_per_dataset`` for this database, for the downgrade."""
    path = next(Path(__file__).parent.glob("*_0005_*.py"))
    spec = importlib.util.spec_from_file_location("_securitynet_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    postgres = op.get_bind().dialect.name == "postgresql"
    body: str = module.ACCURACY_POSTGRESQL if postgres else module.ACCURACY_PORTABLE  # type: ignore[attr-defined]
    return body


def upgrade() -> None:
    op.create_table(
        "accuracy_statistics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grouping", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=True),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("with_top1", sa.Integer(), nullable=False),
        sa.Column("top1_min", sa.Float(), nullable=True),
        sa.Column("top1_q1", sa.Float(), nullable=True),
        sa.Column("top1_median", sa.Float(), nullable=True),
        sa.Column("top1_q3", sa.Float(), nullable=True),
        sa.Column("top1_max", sa.Float(), nullable=True),
        sa.Column("top1_mean", sa.Float(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accuracy_statistics")),
    )
    op.create_index(
        op.f("ix_accuracy_statistics_grouping"), "accuracy_statistics", ["grouping"]
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for key in GROUPINGS:
        op.execute(f"INSERT INTO accuracy_statistics ({COLUMNS}) {_fill_select(key, postgres)}")
    op.execute("DROP VIEW IF EXISTS v_accuracy_per_dataset")
    op.execute(f"CREATE VIEW v_accuracy_per_dataset AS {V_ACCURACY.strip()}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_accuracy_per_dataset")
    op.execute(f"CREATE VIEW v_accuracy_per_dataset AS {_previous_view().strip()}")
    op.drop_index(op.f("ix_accuracy_statistics_grouping"), table_name="accuracy_statistics")
    op.drop_table("accuracy_statistics")
