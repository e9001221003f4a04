"""entry.arch_resolution: how an entry's architecture was found, indexed

``resolved`` (a signature match against the registries), ``ambiguous`` (several registry
nets share its signature and compute different things), ``unresolved`` (with the reason
in ``raw.architecture``), ``declared`` (a curated architecture spec); NULL for registry
sources, whose architecture is their own. Plain ``ALTER TABLE ADD/DROP COLUMN`` on both
databases (no rebuild of ``entry``; see 0003).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 23:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("entry", sa.Column("arch_resolution", sa.String(length=16), nullable=True))
    op.create_index(op.f("ix_entry_arch_resolution"), "entry", ["arch_resolution"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_entry_arch_resolution"), table_name="entry")
    op.drop_column("entry", "arch_resolution")
