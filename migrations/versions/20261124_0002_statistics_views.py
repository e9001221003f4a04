"""statistics views

SQL views that make the common questions one-liners (``schema/catalogue.md`` documents each
one with example queries). Handwritten, and the same text runs on SQLite (>= 3.30: window
functions, aggregate FILTER) and PostgreSQL.

Counting views cover live entries only (``NOT removed_upstream``), as ``securitynet list``
does; ``v_claims`` and ``v_training_chain`` keep every row and carry the flag instead.
Quartiles are computed portably with window functions, interpolated linearly between the
two nearest values (what ``pandas.Series.quantile`` and PostgreSQL's ``percentile_cont`` do).

The definitions are frozen here, not imported: a later migration that changes a view drops
and recreates it. On SQLite, a later migration that batch-alters a table a view reads
(``entry``, ``accuracy_claim``, ``entry_dataset``) must drop the views first and recreate
them after, because SQLite refuses to rename a table under a view that names it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _quantile(q_num: int, q_den: int) -> str:
    """Linear-interpolated quantile ``q_num / q_den`` of ``top1`` over ``ranked``.

    With n values sorted ascending and 1-based row numbers ``rn``, the quantile sits at
    0-based position p = (n - 1) * q: the value at row floor(p) + 1 weighs 1 - frac(p), the
    one at row floor(p) + 2 weighs frac(p). Integer division gives floor(p) on both SQLite
    and PostgreSQL.
    """
    lo = f"((n - 1) * {q_num}) / {q_den}"
    frac = f"(((n - 1) * {q_num}) % {q_den}) / {float(q_den)}"
    return (
        f"SUM(CASE WHEN rn = {lo} + 1 THEN top1 * (1 - {frac}) "
        f"WHEN rn = {lo} + 2 THEN top1 * {frac} ELSE 0 END)"
    )


VIEWS: dict[str, str] = {
    "v_entries_per_source": """
        SELECT source,
               COUNT(*) FILTER (WHERE NOT removed_upstream) AS entries,
               COUNT(top1) FILTER (WHERE NOT removed_upstream) AS with_top1,
               COUNT(DISTINCT dataset) FILTER (WHERE NOT removed_upstream) AS datasets,
               COUNT(DISTINCT family) FILTER (WHERE NOT removed_upstream) AS families,
               COUNT(*) FILTER (WHERE removed_upstream) AS removed
        FROM entry
        GROUP BY source
    """,
    "v_entries_per_dataset": """
        SELECT dataset,
               COUNT(*) AS entries,
               COUNT(top1) AS with_top1,
               COUNT(DISTINCT source) AS sources,
               COUNT(DISTINCT family) AS families
        FROM entry
        WHERE NOT removed_upstream
        GROUP BY dataset
    """,
    "v_entries_per_family": """
        SELECT family,
               COUNT(*) AS entries,
               COUNT(top1) AS with_top1,
               COUNT(DISTINCT source) AS sources,
               COUNT(DISTINCT architecture) AS architectures,
               COUNT(DISTINCT dataset) AS datasets
        FROM entry
        WHERE NOT removed_upstream
        GROUP BY family
    """,
    "v_entries_per_licence": """
        SELECT licence,
               COUNT(*) AS entries,
               COUNT(top1) AS with_top1,
               COUNT(DISTINCT source) AS sources
        FROM entry
        WHERE NOT removed_upstream
        GROUP BY licence
    """,
    "v_accuracy_per_dataset": f"""
        WITH ranked AS (
            SELECT dataset, top1,
                   ROW_NUMBER() OVER (PARTITION BY dataset ORDER BY top1) AS rn,
                   COUNT(*) OVER (PARTITION BY dataset) AS n
            FROM entry
            WHERE top1 IS NOT NULL AND NOT removed_upstream
        )
        SELECT dataset,
               COUNT(*) AS entries,
               MIN(top1) AS top1_min,
               {_quantile(1, 4)} AS top1_q1,
               {_quantile(1, 2)} AS top1_median,
               {_quantile(3, 4)} AS top1_q3,
               MAX(top1) AS top1_max,
               AVG(top1) AS top1_mean
        FROM ranked
        GROUP BY dataset
    """,
    "v_claims": """
        SELECT c.id AS claim_id,
               c.entry_id,
               e.source AS entry_source,
               e.architecture,
               e.family,
               e.params,
               e.dataset AS trained_on,
               c.dataset,
               c.split,
               c.metric,
               c.value,
               c.img_size,
               c.crop_pct,
               c.kind,
               c.source,
               c.evidence,
               c.url,
               c.origin,
               c.recorded_at,
               e.removed_upstream
        FROM accuracy_claim AS c
        JOIN entry AS e ON e.id = c.entry_id
    """,
    "v_training_chain": """
        SELECT d.entry_id,
               e.source AS entry_source,
               e.architecture,
               e.family,
               d.position,
               d.stage,
               d.dataset,
               d.raw_name,
               e.dataset AS final_dataset,
               d.source,
               d.evidence,
               d.origin,
               e.removed_upstream
        FROM entry_dataset AS d
        JOIN entry AS e ON e.id = d.entry_id
    """,
}


def upgrade() -> None:
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
