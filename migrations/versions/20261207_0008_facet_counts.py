"""facet counts, text search: browse facets counted at write time, searches from a trigram index

- ``facet_count``: entries per combination of data set, family, source, licence, task,
  input size, pre-training data sets (a key) and the visibility flags; ``facet_pretrain``:
  the names in each pre-training key. A browse page with facet filters alone counts over
  these rows instead of over every entry (``securitynet.catalogue.facet_table``).
- ``summary_state``: one row per stored summary that is current. Triggers on ``entry`` and
  ``entry_dataset`` delete every row on an insert, a delete or an update of a counted
  column, whoever writes; the catalogue's refresh puts the row back with new counts. A
  reader that finds no row counts over the entries.

- The browse covering indexes of 0006 also hold ``task`` and ``input_size`` (the facet and
  the range browse gained), so a page with a top-1 range still counts from the index alone;
  ``ix_entry_browse_params`` does the same for a parameter range (through the plain
  ``ix_entry_params`` every matching row was a table look-up: 16 s for six counts of a
  million entries).
- ``entry`` gets an index on each column a browse page sorts by that had none (``name``,
  ``gflops``, ``first_seen``, ``last_seen``): sorted on one of them, the first page read
  every entry and sorted them.
- Text search (``securitynet.catalogue.textsearch``): on SQLite ``entry_search``, an FTS5
  table with the trigram tokenizer over ``entry.id`` and ``entry.architecture`` (external
  content, kept by triggers); on PostgreSQL GIN ``gin_trgm_ops`` indexes on ``lower(id)`` and
  ``lower(architecture)`` (``pg_trgm``; where the server refuses the extension, a warning
  and no index: searches then read every entry).

Filled here from what the catalogue holds (this revision's statements, frozen: the
library's refresh may change with later revisions).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:45:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("alembic.runtime.migration")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Columns whose update changes a count (the SQLite UPDATE triggers fire on these alone).
WATCHED = {
    "entry": "dataset, family, source, licence, task, input_size, removed_upstream, same_weights_as, test_net",
    "entry_dataset": "entry_id, dataset, stage",
}
_COLUMNS = "dataset, family, source, licence, task, input_size"
_TAIL = ["removed_upstream", "test_net", "same_weights_as", "family", "source", "licence", "params"]
BROWSE = {"ix_entry_browse_dataset": ["dataset", "top1"], "ix_entry_browse_top1": ["top1", "dataset"]}
SORTED = ("name", "gflops", "first_seen", "last_seen")


def _browse_indexes(tail: list[str]) -> None:
    for name, lead in BROWSE.items():
        op.drop_index(name, table_name="entry")
        op.create_index(name, "entry", [*lead, *tail])
_FLAGS = "e.removed_upstream, (e.same_weights_as IS NOT NULL), e.test_net"


def _keys(postgres: bool) -> str:
    agg = (
        "string_agg(length(dataset) || ':' || dataset, '' ORDER BY dataset)"
        if postgres
        else "group_concat(length(dataset) || ':' || dataset, '')"
    )
    return (
        f"SELECT entry_id, {agg} AS pretrain FROM (SELECT DISTINCT entry_id, dataset "
        "FROM entry_dataset WHERE stage = 'pretrain') AS d GROUP BY entry_id"
    )


def _fill(postgres: bool) -> None:
    columns = ", ".join(f"e.{c.strip()}" for c in _COLUMNS.split(","))
    op.execute(
        f"INSERT INTO facet_count ({_COLUMNS}, pretrain, removed_upstream, shared_weights, test_net, entries) "
        f"SELECT {columns}, p.pretrain, {_FLAGS}, COUNT(*) FROM entry AS e "
        f"LEFT JOIN ({_keys(postgres)}) AS p ON p.entry_id = e.id GROUP BY {columns}, p.pretrain, {_FLAGS}"
    )
    op.execute(
        f"INSERT INTO facet_pretrain (pretrain, dataset) SELECT DISTINCT p.pretrain, d.dataset "
        f"FROM ({_keys(postgres)}) AS p JOIN entry_dataset AS d ON d.entry_id = p.entry_id AND d.stage = 'pretrain'"
    )
    op.execute(
        "INSERT INTO summary_state (name, refreshed_at) VALUES ('facet_count', CURRENT_TIMESTAMP)"
    )


def _create_triggers(postgres: bool) -> None:
    if postgres:
        op.execute(
            "CREATE FUNCTION securitynet_summaries_stale() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN DELETE FROM summary_state; RETURN NULL; END $$"
        )
        for table, columns in WATCHED.items():
            op.execute(
                f"CREATE TRIGGER tr_{table}_summaries AFTER INSERT OR DELETE OR UPDATE OF {columns} "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION securitynet_summaries_stale()"
            )
            op.execute(
                f"CREATE TRIGGER tr_{table}_summaries_truncate AFTER TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION securitynet_summaries_stale()"
            )
        return
    for table, columns in WATCHED.items():  # SQLite triggers are per row: an empty DELETE is cheap
        for event in ("INSERT", "DELETE", f"UPDATE OF {columns}"):
            name = f"tr_{table}_summaries_{event.split()[0].lower()}"
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN DELETE FROM summary_state; END"
            )


def _drop_triggers(postgres: bool) -> None:
    for table in WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS tr_{table}_summaries ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS tr_{table}_summaries_truncate ON {table}")
        else:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS tr_{table}_summaries_{event}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS securitynet_summaries_stale()")


SEARCH = "entry_search"
TRIGRAM = {"ix_entry_search_id": "id", "ix_entry_search_architecture": "architecture"}


def _create_search(postgres: bool) -> None:
    if postgres:
        bind = op.get_bind()
        try:
            with bind.begin_nested():  # a refusal must not abort the migration's transaction
                bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except sa.exc.DBAPIError as exc:
            log.warning("no trigram index for text search (pg_trgm: %s); searches read every entry", exc.orig)
            return
        for name, col in TRIGRAM.items():
            op.execute(f"CREATE INDEX {name} ON entry USING gin (lower({col}) gin_trgm_ops)")
        return
    op.execute(
        f"CREATE VIRTUAL TABLE {SEARCH} USING fts5(id, architecture, content='entry', "
        "content_rowid='rowid', tokenize='trigram')"
    )
    op.execute(f"INSERT INTO {SEARCH}({SEARCH}) VALUES ('rebuild')")
    new = f"INSERT INTO {SEARCH}(rowid, id, architecture) VALUES (new.rowid, new.id, new.architecture);"
    old = (
        f"INSERT INTO {SEARCH}({SEARCH}, rowid, id, architecture) "
        "VALUES ('delete', old.rowid, old.id, old.architecture);"
    )
    op.execute(f"CREATE TRIGGER tr_entry_search_insert AFTER INSERT ON entry BEGIN {new} END")
    op.execute(f"CREATE TRIGGER tr_entry_search_delete AFTER DELETE ON entry BEGIN {old} END")
    op.execute(f"CREATE TRIGGER tr_entry_search_update AFTER UPDATE OF id, architecture ON entry BEGIN {old} {new} END")


def _drop_search(postgres: bool) -> None:
    if postgres:
        for name in TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        return
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS tr_entry_search_{event}")
    op.execute(f"DROP TABLE IF EXISTS {SEARCH}")


def upgrade() -> None:
    op.create_table(
        "facet_count",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=128), nullable=True),
        sa.Column("family", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("licence", sa.String(length=128), nullable=True),
        sa.Column("task", sa.String(length=64), nullable=True),
        sa.Column("input_size", sa.Integer(), nullable=True),
        sa.Column("pretrain", sa.Text(), nullable=True),
        sa.Column("removed_upstream", sa.Boolean(), nullable=False),
        sa.Column("shared_weights", sa.Boolean(), nullable=False),
        sa.Column("test_net", sa.Boolean(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facet_count")),
    )
    op.create_table(
        "facet_pretrain",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pretrain", sa.Text(), nullable=False),
        sa.Column("dataset", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facet_pretrain")),
    )
    op.create_index(op.f("ix_facet_pretrain_pretrain"), "facet_pretrain", ["pretrain"])
    op.create_index(op.f("ix_facet_pretrain_dataset"), "facet_pretrain", ["dataset"])
    op.create_table(
        "summary_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_summary_state")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    _fill(postgres)
    _create_triggers(postgres)
    _browse_indexes([*_TAIL, "task", "input_size"])
    for column in SORTED:
        op.create_index(op.f(f"ix_entry_{column}"), "entry", [column])
    op.create_index("ix_entry_browse_params", "entry", ["params", "dataset", *_TAIL[:-1], "task", "input_size", "top1"])
    _create_search(postgres)


def downgrade() -> None:
    _drop_search(op.get_bind().dialect.name == "postgresql")
    op.drop_index("ix_entry_browse_params", table_name="entry")
    for column in SORTED:
        op.drop_index(op.f(f"ix_entry_{column}"), table_name="entry")
    _browse_indexes(_TAIL)
    _drop_triggers(op.get_bind().dialect.name == "postgresql")
    op.drop_table("summary_state")
    op.drop_index(op.f("ix_facet_pretrain_dataset"), table_name="facet_pretrain")
    op.drop_index(op.f("ix_facet_pretrain_pretrain"), table_name="facet_pretrain")
    op.drop_table("facet_pretrain")
    op.drop_table("facet_count")
