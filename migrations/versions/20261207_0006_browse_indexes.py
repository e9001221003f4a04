"""browse indexes: the web view's faceted browse answers from two covering indexes

A browse page asks, under one filter, for a page of entries, their total and a count per
facet value. With only ``ix_entry_dataset_top1`` every matching row was read from the table
(about 13,000 of a million for "CIFAR-10, top-1 >= 90"). These two indexes hold every
column those questions read, so the database answers from the index alone:

- ``ix_entry_browse_dataset``: a data set, a top-1 range, the visibility flags, then the
  other facets and the parameter count (the page, the total, the family / source /
  licence counts on one data set);
- ``ix_entry_browse_top1``: the same columns led by top-1 (the data-set counts under a
  top-1 range, and the best-first page without a data set).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TAIL = ["removed_upstream", "test_net", "same_weights_as", "family", "source", "licence", "params"]
INDEXES = {
    "ix_entry_browse_dataset": ["dataset", "top1", *_TAIL],
    "ix_entry_browse_top1": ["top1", "dataset", *_TAIL],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "entry", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="entry")
