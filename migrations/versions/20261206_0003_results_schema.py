"""results schema: evaluation provenance, one row per metric, v_results, entry annotations

- ``evaluation`` says who produced its figures (``source``: ``evaluate`` or a publication
  such as ``securitynet-release``), the attack's ``variant``, the evaluated ``dataset``,
  ``protocol`` (was ``data_protocol``), ``seed``, ``config_digest``, ``device`` and
  ``evidence``; its ``metrics`` JSON becomes ``evaluation_metric`` rows (``metric``,
  ``value``, ``lower``, ``upper``), moved over in both directions.
- ``entry`` gains the annotations users filter on, indexed: ``purpose``, ``venue``,
  ``venue_type``, ``year``, ``data_category``, ``train_size``, ``country``.
- View ``v_results``: one row per figure with its evaluation and entry fields.

SQLite: ``evaluation`` is rebuilt by a batch operation (no view reads it before
``v_results`` exists, which is created last and dropped first, and no table references it
while it is rebuilt). ``entry`` is never rebuilt (a rebuild would have to drop the views
that name it, and with foreign keys on, dropping the old table cascades to every child
row): its columns come and go by plain ``ALTER TABLE ADD/DROP COLUMN`` (SQLite >= 3.35).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

V_RESULTS = """
    SELECT m.id AS metric_id,
           v.id AS evaluation_id,
           v.entry_id,
           e.source AS entry_source,
           e.architecture,
           e.family,
           e.dataset AS trained_on,
           e.purpose,
           v.attack,
           v.variant,
           m.metric,
           m.value,
           m.lower,
           m.upper,
           v.dataset,
           v.source,
           v.status,
           v.seed,
           v.config_digest,
           v.device,
           v.evidence,
           v.created_at,
           e.removed_upstream
    FROM evaluation_metric AS m
    JOIN evaluation AS v ON v.id = m.evaluation_id
    JOIN entry AS e ON e.id = v.entry_id
"""

ENTRY_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("purpose", sa.Enum("benchmark", "security", name="purpose", native_enum=False, length=16)),
    ("venue", sa.String(length=128)),
    ("venue_type", sa.String(length=32)),
    ("year", sa.Integer()),
    ("data_category", sa.String(length=32)),
    ("train_size", sa.BigInteger()),
    ("country", sa.String(length=255)),
)

_evaluation = sa.table("evaluation", sa.column("id", sa.Integer()), sa.column("metrics", sa.JSON()))
_metric = sa.table(
    "evaluation_metric",
    sa.column("evaluation_id", sa.Integer()),
    sa.column("metric", sa.String()),
    sa.column("value", sa.Float()),
    sa.column("lower", sa.Float()),
    sa.column("upper", sa.Float()),
)


def _metric_rows(evaluation_id: int, metrics: Any) -> list[dict[str, Any]]:
    """The numeric figures of an old ``metrics`` JSON: ``{"auc": 0.6}`` or
    ``{"auc": {"value": 0.6, "lower": 0.55, "upper": 0.65}}``; anything else is dropped."""
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    rows = []
    for name, figure in (metrics or {}).items():
        bounds: dict[str, Any] = {}
        if isinstance(figure, dict):
            bounds = figure
            figure = figure.get("value")
        if isinstance(figure, (int, float)) and not isinstance(figure, bool):
            rows.append(
                {
                    "evaluation_id": evaluation_id,
                    "metric": str(name)[:64],
                    "value": float(figure),
                    "lower": bounds.get("lower"),
                    "upper": bounds.get("upper"),
                }
            )
    return rows


def upgrade() -> None:
    bind = op.get_bind()
    old_metrics = [
        row
        for eid, metrics in bind.execute(sa.select(_evaluation.c.id, _evaluation.c.metrics))
        for row in _metric_rows(eid, metrics)
    ]

    for name, type_ in ENTRY_COLUMNS:
        op.add_column("entry", sa.Column(name, type_, nullable=True))
        op.create_index(op.f(f"ix_entry_{name}"), "entry", [name], unique=False)

    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.alter_column(
            "data_protocol",
            new_column_name="protocol",
            existing_type=sa.JSON(),
            existing_nullable=False,
        )
        batch_op.drop_column("metrics")
        batch_op.add_column(sa.Column("variant", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("source", sa.String(length=96), server_default="evaluate", nullable=False)
        )
        batch_op.add_column(sa.Column("dataset", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("seed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("config_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_evaluation_dataset_dataset"), "dataset", ["dataset"], ["name"]
        )
        batch_op.create_index(batch_op.f("ix_evaluation_variant"), ["variant"], unique=False)
        batch_op.create_index(batch_op.f("ix_evaluation_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_evaluation_dataset"), ["dataset"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_evaluation_config_digest"), ["config_digest"], unique=False
        )
        batch_op.create_index("ix_evaluation_entry_id_attack", ["entry_id", "attack"], unique=False)

    op.create_table(
        "evaluation_metric",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluation.id"],
            name=op.f("fk_evaluation_metric_evaluation_id_evaluation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_metric")),
        sa.UniqueConstraint(
            "evaluation_id", "metric", name="uq_evaluation_metric_evaluation_id_metric"
        ),
    )
    with op.batch_alter_table("evaluation_metric", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluation_metric_evaluation_id"), ["evaluation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_evaluation_metric_metric"), ["metric"], unique=False)
        batch_op.create_index(
            "ix_evaluation_metric_metric_value", ["metric", "value"], unique=False
        )
    if old_metrics:
        op.bulk_insert(_metric, old_metrics)

    op.execute(f"CREATE VIEW v_results AS {V_RESULTS.strip()}")


def downgrade() -> None:
    bind = op.get_bind()
    op.execute("DROP VIEW IF EXISTS v_results")

    grouped: dict[int, dict[str, Any]] = {}
    for row in bind.execute(
        sa.select(
            _metric.c.evaluation_id,
            _metric.c.metric,
            _metric.c.value,
            _metric.c.lower,
            _metric.c.upper,
        )
    ):
        figure: Any = row.value
        if row.lower is not None or row.upper is not None:
            figure = {"value": row.value, "lower": row.lower, "upper": row.upper}
        grouped.setdefault(row.evaluation_id, {})[row.metric] = figure
    op.drop_table("evaluation_metric")

    with op.batch_alter_table("evaluation", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_entry_id_attack")
        batch_op.drop_index(batch_op.f("ix_evaluation_config_digest"))
        batch_op.drop_index(batch_op.f("ix_evaluation_dataset"))
        batch_op.drop_index(batch_op.f("ix_evaluation_source"))
        batch_op.drop_index(batch_op.f("ix_evaluation_variant"))
        batch_op.drop_constraint(batch_op.f("fk_evaluation_dataset_dataset"), type_="foreignkey")
        for name in ("evidence", "device", "config_digest", "seed", "dataset", "source", "variant"):
            batch_op.drop_column(name)
        batch_op.add_column(sa.Column("metrics", sa.JSON(), server_default="{}", nullable=False))
        batch_op.alter_column(
            "protocol",
            new_column_name="data_protocol",
            existing_type=sa.JSON(),
            existing_nullable=False,
        )
    for eid, metrics in grouped.items():
        bind.execute(sa.update(_evaluation).where(_evaluation.c.id == eid).values(metrics=metrics))

    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch rebuild of ``entry`` would
    # have to drop the views that name it and, with foreign keys on, cascade to its children.
    for name, _type in reversed(ENTRY_COLUMNS):
        op.drop_index(op.f(f"ix_entry_{name}"), table_name="entry")
        op.drop_column("entry", name)
