"""Read-only SQL: queries run, writes are refused by the database, time and rows are capped."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.sql import first_keyword
from securitynet.catalogue.sqlite_readonly import (
    SqliteGuard,
    open_sqlite_readonly,
    sqlite_database_path,
)
from securitynet.errors import InvalidQueryError, QueryTimeoutError, ReadOnlyViolationError
from tests.catalogue import sample
from tests.catalogue.fixtures import backend

RECURSIVE_FOREVER = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
)


def _entries(cat: Catalogue) -> int:
    return cat.count(include_removed=True)


def test_a_query_returns_columns_and_rows(catalogue: Catalogue) -> None:
    result = catalogue.sql(
        "SELECT source, count(*) AS n FROM entry GROUP BY source ORDER BY source"
    )
    assert result.columns == ("source", "n")
    assert [tuple(r) for r in result.rows] == [
        ("hf", 1),
        ("imgclsmob", 5),
        ("timm", 4),
        ("torchvision", 1),
    ]
    assert result.truncated is False
    assert result.elapsed > 0
    assert result.records()[0] == {"source": "hf", "n": 1}


def test_repeated_column_names_stay_apart_in_records(catalogue: Catalogue) -> None:
    assert catalogue.sql("SELECT 1 AS n, 2 AS n").records() == [{"n": 1, "n_2": 2}]


def test_rows_are_capped_and_the_cap_is_reported(catalogue: Catalogue) -> None:
    capped = catalogue.sql("SELECT id FROM entry ORDER BY id", max_rows=3)
    assert len(capped.rows) == 3 and capped.truncated
    exact = catalogue.sql("SELECT id FROM entry ORDER BY id", max_rows=len(sample.RECORDS))
    assert len(exact.rows) == len(sample.RECORDS) and not exact.truncated


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM entry",
        "UPDATE entry SET top1 = 100",
        "DROP TABLE entry",
        "INSERT INTO dataset (name, canonical, aliases) VALUES ('x', false, '[]')",
        "ATTACH DATABASE 'elsewhere.db' AS elsewhere",
        "PRAGMA writable_schema = ON",
        "CREATE TABLE t (x INTEGER)",
        "BEGIN",
    ],
)
def test_writes_are_refused(catalogue: Catalogue, statement: str) -> None:
    before = _entries(catalogue)
    with pytest.raises(ReadOnlyViolationError, match="refused"):
        catalogue.sql(statement)
    assert _entries(catalogue) == before


@pytest.mark.parametrize(
    "statement",
    [
        "WITH gone AS (SELECT id FROM entry) DELETE FROM entry WHERE id IN (SELECT id FROM gone)",
        "WITH x AS (SELECT 1) INSERT INTO dataset (name, canonical, aliases) VALUES ('x', false, '[]')",
        "/* a comment first */ WITH x AS (SELECT 1) UPDATE entry SET top1 = 0",
    ],
)
def test_a_write_hidden_behind_a_with_is_refused_by_the_database(
    catalogue: Catalogue, statement: str
) -> None:
    # these start with WITH, which the keyword check lets through: the database refuses them
    assert first_keyword(statement) == "with"
    before = catalogue.sql("SELECT count(*), sum(top1) FROM entry").rows
    with pytest.raises(ReadOnlyViolationError):
        catalogue.sql(statement)
    assert catalogue.sql("SELECT count(*), sum(top1) FROM entry").rows == before


def test_postgres_data_modifying_cte_is_refused(catalogue: Catalogue, catalogue_url: str) -> None:
    if backend(catalogue_url) != "postgresql":
        pytest.skip("data-modifying WITH ... SELECT is PostgreSQL syntax")
    with pytest.raises(ReadOnlyViolationError):
        catalogue.sql("WITH d AS (DELETE FROM entry RETURNING id) SELECT count(*) FROM d")
    assert _entries(catalogue) == len(sample.RECORDS)


def test_the_sqlite_connection_itself_cannot_write_or_attach(
    catalogue: Catalogue, catalogue_url: str, tmp_path: Path
) -> None:
    if backend(catalogue_url) != "sqlite":
        pytest.skip("SQLite connection guard")
    guard = SqliteGuard(timeout=5)
    conn = open_sqlite_readonly(sqlite_database_path(catalogue.engine), guard)
    try:
        for statement in (
            "DELETE FROM entry",
            "PRAGMA writable_schema=ON",
            f"ATTACH '{tmp_path / 'x.db'}' AS x",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute(statement)
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute("SELECT load_extension('anything')")
    finally:
        conn.close()
    assert not (tmp_path / "x.db").exists()
    assert _entries(catalogue) == len(sample.RECORDS)


def test_a_runaway_query_times_out(catalogue: Catalogue) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"time limit of 0\.3 s"):
        catalogue.sql(RECURSIVE_FOREVER, timeout=0.3)
    assert time.monotonic() - started < 5


def test_sql_errors_carry_the_database_message(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidQueryError, match=r"no such table|does not exist") as info:
        catalogue.sql("SELECT * FROM no_such_table")
    assert "\n" not in str(info.value)


def test_only_one_statement_runs(catalogue: Catalogue) -> None:
    before = _entries(catalogue)
    with pytest.raises((InvalidQueryError, ReadOnlyViolationError)):
        catalogue.sql("SELECT 1; DELETE FROM entry")
    assert _entries(catalogue) == before
    assert catalogue.sql("SELECT 1 AS one;").rows == ((1,),)  # a trailing semicolon is fine


@pytest.mark.parametrize("statement", ["", "   ", "-- only a comment"])
def test_an_empty_query_is_an_error(catalogue: Catalogue, statement: str) -> None:
    with pytest.raises(InvalidQueryError, match="empty"):
        catalogue.sql(statement)


def test_introspection_pragmas_and_views_are_readable(
    catalogue: Catalogue, catalogue_url: str
) -> None:
    assert catalogue.sql("SELECT count(*) FROM v_entries_per_dataset").rows[0][0] > 0
    if backend(catalogue_url) == "sqlite":
        names = {r[1] for r in catalogue.sql("PRAGMA table_info(entry)").rows}
        assert {"id", "dataset", "top1"} <= names


def test_explain_runs(catalogue: Catalogue) -> None:
    assert catalogue.sql("EXPLAIN SELECT * FROM entry WHERE dataset = 'CIFAR-10'").rows


@pytest.mark.parametrize(
    ("statement", "keyword"),
    [
        ("select 1", "select"),
        ("  -- c\n /* d */ (SELECT 1)", "select"),
        ("WITH x AS (SELECT 1) SELECT 2", "with"),
        ("", ""),
    ],
)
def test_first_keyword(statement: str, keyword: str) -> None:
    assert first_keyword(statement) == keyword
