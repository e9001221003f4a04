"""facet counts, text search: browse facets counted at write time, searches from a trigram index

- ``entry.pretrain``: the entry's pre-training data sets as one key (each name written
  ``<length>:<name>``, in name order, concatenated), kept by triggers on ``entry_dataset``,
  so a browse counts pre-training data from the entry row (covering indexes hold it).
- ``facet_count``: entries per combination of data set, family, source, licence, task,
  input size, pre-training data sets (a key) and the visibility flags; ``facet_pretrain``:
  the names in each pre-training key. A browse page with facet filters alone counts over
  these rows instead of over every entry (``securitynet.catalogue.facet_table``).
- ``summary_state``: one row per stored summary that is current. Triggers on ``entry`` and
  ``entry_dataset`` delete every row on an insert, a delete or an update of a counted
  column, whoever writes; the catalogue's refresh puts the row back with new counts. A
  reader that finds no row counts over the entries.
- The browse covering indexes of 0006 also hold ``task``, ``input_size`` and ``pretrain``
  (the facets and the range browse gained), so a page with a top-1 range still counts from the index alone;
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
    "entry": "dataset, family, source, licence, task, input_size, pretrain, removed_upstream, "
    "same_weights_as, test_net",
    "entry_dataset": "entry_id, dataset, stage",
}
_COLUMNS = ("dataset", "family", "source", "licence", "task", "input_size", "pretrain")
_FLAGS = "e.removed_upstream, (e.same_weights_as IS NOT NULL), e.test_net"
_TAIL = ["removed_upstream", "test_net", "same_weights_as", "family", "source", "licence", "params"]
BROWSE = {"ix_entry_browse_dataset": ["dataset", "top1"], "ix_entry_browse_top1": ["top1", "dataset"]}
SORTED = ("name", "gflops", "first_seen", "last_seen")
SEARCH = "entry_search"
TRIGRAM = {"ix_entry_search_id": "id", "ix_entry_search_architecture": "architecture"}


def _key(postgres: bool, entry_id: str) -> str:
    """The pre-training key of the entry ``entry_id`` (an SQL expression) names."""
    if postgres:
        return (
            "(SELECT string_agg(length(d.dataset) || ':' || d.dataset, '' ORDER BY d.dataset) "
            f"FROM (SELECT DISTINCT dataset FROM entry_dataset WHERE entry_id = {entry_id} "
            "AND stage = 'pretrain') AS d)"
        )
    return (
        "(SELECT group_concat(length(d.dataset) || ':' || d.dataset, '') "
        f"FROM (SELECT DISTINCT dataset FROM entry_dataset WHERE entry_id = {entry_id} "
        "AND stage = 'pretrain' ORDER BY dataset) AS d)"
    )


def _pretrain_column(postgres: bool) -> None:
    op.add_column("entry", sa.Column("pretrain", sa.Text(), nullable=True))
    op.execute(
        f"UPDATE entry SET pretrain = {_key(postgres, 'entry.id')} "
        "WHERE id IN (SELECT entry_id FROM entry_dataset WHERE stage = 'pretrain')"
    )
    if postgres:
        op.execute(
            "CREATE FUNCTION securitynet_entry_pretrain() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF TG_OP <> 'DELETE' THEN "
            f"UPDATE entry SET pretrain = {_key(True, 'NEW.entry_id')} WHERE id = NEW.entry_id; END IF; "
            "IF TG_OP <> 'INSERT' THEN "
            f"UPDATE entry SET pretrain = {_key(True, 'OLD.entry_id')} WHERE id = OLD.entry_id; END IF; "
            "RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER tr_entry_dataset_pretrain AFTER INSERT OR DELETE OR UPDATE OF entry_id, dataset, "
            "stage ON entry_dataset FOR EACH ROW EXECUTE FUNCTION securitynet_entry_pretrain()"
        )
        return
    new = f"UPDATE entry SET pretrain = {_key(False, 'NEW.entry_id')} WHERE id = NEW.entry_id;"
    old = f"UPDATE entry SET pretrain = {_key(False, 'OLD.entry_id')} WHERE id = OLD.entry_id;"
    op.execute(
        "CREATE TRIGGER tr_entry_dataset_pretrain_insert AFTER INSERT ON entry_dataset "
        f"WHEN NEW.stage = 'pretrain' BEGIN {new} END"
    )
    op.execute(
        "CREATE TRIGGER tr_entry_dataset_pretrain_delete AFTER DELETE ON entry_dataset "
        f"WHEN OLD.stage = 'pretrain' BEGIN {old} END"
    )
    op.execute(
        "CREATE TRIGGER tr_entry_dataset_pretrain_update AFTER UPDATE OF entry_id, dataset, stage "
        f"ON entry_dataset BEGIN {new} {old} END"
    )


def _drop_pretrain_column(postgres: bool) -> None:
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS tr_entry_dataset_pretrain ON entry_dataset")
        op.execute("DROP FUNCTION IF EXISTS securitynet_entry_pretrain()")
    else:
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS tr_entry_dataset_pretrain_{event}")
    op.execute("ALTER TABLE entry DROP COLUMN pretrain")


def _fill() -> None:
    columns = ", ".join(f"e.{c}" for c in _COLUMNS)
    op.execute(
        f"INSERT INTO facet_count ({', '.join(_COLUMNS)}, removed_upstream, shared_weights, test_net, entries) "
        f"SELECT {columns}, {_FLAGS}, COUNT(*) FROM entry AS e GROUP BY {columns}, {_FLAGS}"
    )
    op.execute(
        "INSERT INTO facet_pretrain (pretrain, dataset) SELECT DISTINCT e.pretrain, d.dataset FROM entry AS e "
        "JOIN entry_dataset AS d ON d.entry_id = e.id AND d.stage = 'pretrain' WHERE e.pretrain IS NOT NULL"
    )
    op.execute("INSERT INTO summary_state (name, refreshed_at) VALUES ('facet_count', CURRENT_TIMESTAMP)")


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
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN DELETE FROM summary_state; END")


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


def _browse_indexes(tail: list[str], params: list[str] | None) -> None:
    for name, lead in BROWSE.items():
        op.drop_index(name, table_name="entry")
        op.create_index(name, "entry", [*lead, *tail])
    if params is None:
        op.drop_index("ix_entry_browse_params", table_name="entry")
    else:
        op.create_index("ix_entry_browse_params", "entry", params)


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
    bind = op.get_bind()
    try:
        with bind.begin_nested():  # SQLite older than 3.34, or built without FTS5: no index
            bind.exec_driver_sql(
                f"CREATE VIRTUAL TABLE {SEARCH} USING fts5(id, architecture, content='entry', "
                "content_rowid='rowid', tokenize='trigram')"
            )
    except sa.exc.DBAPIError as exc:
        log.warning("no trigram index for text search (SQLite: %s); searches read every entry", exc.orig)
        return
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
    _pretrain_column(postgres)
    _fill()
    _create_triggers(postgres)
    facets = [*_TAIL, "task", "input_size", "pretrain"]
    _browse_indexes(facets, ["params", "dataset", *_TAIL[:-1], "task", "input_size", "pretrain", "top1"])
    for column in SORTED:
        op.create_index(op.f(f"ix_entry_{column}"), "entry", [column])
    _create_search(postgres)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_search(postgres)
    for column in SORTED:
        op.drop_index(op.f(f"ix_entry_{column}"), table_name="entry")
    _browse_indexes(_TAIL, None)
    _drop_triggers(postgres)
    _drop_pretrain_column(postgres)
    op.drop_table("summary_state")
    op.drop_index(op.f("ix_facet_pretrain_dataset"), table_name="facet_pretrain")
    op.drop_index(op.f("ix_facet_pretrain_pretrain"), table_name="facet_pretrain")
    op.drop_table("facet_pretrain")
    op.drop_table("facet_count")
