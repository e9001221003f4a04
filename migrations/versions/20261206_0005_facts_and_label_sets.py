"""facts fixed: top-1 at the loader's size, shared weights, test nets, label sets stored once

- ``entry.top1`` becomes the figure at the input size the loader uses; ``top1_size`` says
  which, ``top1_best`` / ``top1_best_size`` keep the best figure at any size beside it.
- ``entry.same_weights_as`` links an entry to the one whose weight file it shares (same URL
  or sha256); ``entry.test_net`` marks nets a library registers for its own tests.
- ``label_set``: each distinct list of class names once, keyed by its sha256;
  ``entry.label_set_digest`` points to it.
- The counting and accuracy views count each checkpoint once: entries that share another's
  weights and test nets are left out, as ``securitynet list`` does by default. On
  PostgreSQL ``v_accuracy_per_dataset`` uses ``percentile_cont`` (the same interpolation as
  the portable window-function text, which SQLite keeps).

SQLite cannot add a foreign key without rebuilding ``entry``, and refuses to rename a table
under a view that names it (see 0002), so the views are dropped first and recreated after.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 23:10:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What a counting view counts: live entries, each checkpoint once, no test nets.
COUNTED = "NOT removed_upstream AND NOT test_net AND same_weights_as IS NULL"


def _quantile(q_num: int, q_den: int) -> str:
    """Linear-interpolated quantile of ``top1`` over ``ranked`` (see 0002)."""
    lo = f"((n - 1) * {q_num}) / {q_den}"
    frac = f"(((n - 1) * {q_num}) % {q_den}) / {float(q_den)}"
    return (
        f"SUM(CASE WHEN rn = {lo} + 1 THEN top1 * (1 - {frac}) "
        f"WHEN rn = {lo} + 2 THEN top1 * {frac} ELSE 0 END)"
    )


ACCURACY_PORTABLE = f"""
        WITH ranked AS (
            SELECT dataset, top1,
                   ROW_NUMBER() OVER (PARTITION BY dataset ORDER BY top1) AS rn,
                   COUNT(*) OVER (PARTITION BY dataset) AS n
            FROM entry
            WHERE top1 IS NOT NULL AND {COUNTED}
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
"""

ACCURACY_POSTGRESQL = f"""
        SELECT dataset,
               COUNT(*) AS entries,
               MIN(top1) AS top1_min,
               percentile_cont(0.25) WITHIN GROUP (ORDER BY top1) AS top1_q1,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY top1) AS top1_median,
               percentile_cont(0.75) WITHIN GROUP (ORDER BY top1) AS top1_q3,
               MAX(top1) AS top1_max,
               AVG(top1) AS top1_mean
        FROM entry
        WHERE top1 IS NOT NULL AND {COUNTED}
        GROUP BY dataset
"""

VIEWS: dict[str, str] = {
    "v_entries_per_source": f"""
        SELECT source,
               COUNT(*) FILTER (WHERE {COUNTED}) AS entries,
               COUNT(top1) FILTER (WHERE {COUNTED}) AS with_top1,
               COUNT(DISTINCT dataset) FILTER (WHERE {COUNTED}) AS datasets,
               COUNT(DISTINCT family) FILTER (WHERE {COUNTED}) AS families,
               COUNT(*) FILTER (WHERE removed_upstream) AS removed
        FROM entry
        GROUP BY source
    """,
    "v_entries_per_dataset": f"""
        SELECT dataset,
               COUNT(*) AS entries,
               COUNT(top1) AS with_top1,
               COUNT(DISTINCT source) AS sources,
               COUNT(DISTINCT family) AS families
        FROM entry
        WHERE {COUNTED}
        GROUP BY dataset
    """,
    "v_entries_per_family": f"""
        SELECT family,
               COUNT(*) AS entries,
               COUNT(top1) AS with_top1,
               COUNT(DISTINCT source) AS sources,
               COUNT(DISTINCT architecture) AS architectures,
               COUNT(DISTINCT dataset) AS datasets
        FROM entry
        WHERE {COUNTED}
        GROUP BY family
    """,
    "v_entries_per_licence": f"""
        SELECT licence,
               COUNT(*) AS entries,
               COUNT(top1) AS with_top1,
               COUNT(DISTINCT source) AS sources
        FROM entry
        WHERE {COUNTED}
        GROUP BY licence
    """,
    "v_accuracy_per_dataset": ACCURACY_PORTABLE,
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


def _revision_module(number: str) -> object:
    path = next(Path(__file__).parent.glob(f"*_{number}_*.py"))
    spec = importlib.util.spec_from_file_location(f"_securitynet_{number}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _previous_views() -> dict[str, str]:
    """The 0002 definitions, for the downgrade (read from that revision's file)."""
    views: dict[str, str] = _revision_module("0002").VIEWS  # type: ignore[attr-defined]
    return views


def _results_view() -> dict[str, str]:
    """0003's ``v_results`` (unchanged here): it names ``entry``, so on SQLite it is dropped
    before ``entry`` is rebuilt and created again after."""
    body: str = _revision_module("0003").V_RESULTS  # type: ignore[attr-defined]
    return {"v_results": body}


def _create_views(views: dict[str, str]) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, body in views.items():
        if postgres and name == "v_accuracy_per_dataset" and body is ACCURACY_PORTABLE:
            body = ACCURACY_POSTGRESQL
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")


def _drop_views(names: Sequence[str]) -> None:
    for name in reversed(list(names)):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    _drop_views([*VIEWS, *_results_view()])
    op.create_table(
        "label_set",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_label_set")),
    )
    with op.batch_alter_table("entry") as batch:
        batch.add_column(sa.Column("top1_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("top1_best", sa.Float(), nullable=True))
        batch.add_column(sa.Column("top1_best_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("same_weights_as", sa.String(length=512), nullable=True))
        batch.add_column(
            sa.Column("test_net", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("label_set_digest", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_entry_same_weights_as"), ["same_weights_as"])
        batch.create_index(batch.f("ix_entry_test_net"), ["test_net"])
        batch.create_index(batch.f("ix_entry_label_set_digest"), ["label_set_digest"])
        batch.create_foreign_key(
            batch.f("fk_entry_label_set_digest_label_set"),
            "label_set",
            ["label_set_digest"],
            ["digest"],
        )
    # top1 was the best figure at any size; the next sync splits it (every row is rewritten
    # once: the ingest's derivation revision is part of each stored content hash)
    op.execute("UPDATE entry SET top1_best = top1")
    _create_views({**VIEWS, **_results_view()})


def downgrade() -> None:
    _drop_views([*VIEWS, *_results_view()])
    op.execute("UPDATE entry SET top1 = COALESCE(top1_best, top1)")
    with op.batch_alter_table("entry") as batch:
        batch.drop_constraint(batch.f("fk_entry_label_set_digest_label_set"), type_="foreignkey")
        batch.drop_index(batch.f("ix_entry_label_set_digest"))
        batch.drop_index(batch.f("ix_entry_test_net"))
        batch.drop_index(batch.f("ix_entry_same_weights_as"))
        for column in (
            "label_set_digest",
            "test_net",
            "same_weights_as",
            "top1_best_size",
            "top1_best",
            "top1_size",
        ):
            batch.drop_column(column)
    op.drop_table("label_set")
    _create_views({**_previous_views(), **_results_view()})
