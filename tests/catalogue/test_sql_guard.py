"""The SQLite guard's parts, one by one: the authorizer's lists, the progress handler, limits."""

from __future__ import annotations

import sqlite3
import time

import pytest

from securitynet.catalogue.sqlite_readonly import (
    MAX_COLUMNS,
    MAX_LENGTH,
    MAX_LIKE_PATTERN,
    MAX_RESULT_BYTES,
    MAX_SQL_LENGTH,
    SqliteGuard,
)

# --- the authorizer's lists, name by name -----------------------------------------------------

INTROSPECTION = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "database_list",
    "compile_options",
]


@pytest.mark.parametrize("pragma", INTROSPECTION)
def test_the_authorizer_allows_each_introspection_pragma(pragma: str) -> None:
    guard = SqliteGuard(5)
    assert (
        guard.authorize(sqlite3.SQLITE_PRAGMA, pragma.upper(), None, None, None)
        == sqlite3.SQLITE_OK
    )
    assert guard.denied is None


@pytest.mark.parametrize("pragma", ["writable_schema", "journal_mode", "query_only", "key"])
def test_the_authorizer_denies_every_other_pragma(pragma: str) -> None:
    guard = SqliteGuard(5)
    assert guard.authorize(sqlite3.SQLITE_PRAGMA, pragma, "1", None, None) == sqlite3.SQLITE_DENY
    assert guard.denied == f"PRAGMA {pragma}"


@pytest.mark.parametrize(
    "function", ["load_extension", "fts3_tokenizer", "readfile", "writefile", "EDIT"]
)
def test_the_authorizer_denies_each_file_or_extension_function(function: str) -> None:
    guard = SqliteGuard(5)
    assert (
        guard.authorize(sqlite3.SQLITE_FUNCTION, None, function, None, None) == sqlite3.SQLITE_DENY
    )
    assert guard.denied == f"FUNCTION {function}"
    assert guard.authorize(sqlite3.SQLITE_FUNCTION, None, "length", None, None) == sqlite3.SQLITE_OK


@pytest.mark.parametrize(
    ("action", "arg1", "words"),
    [
        (sqlite3.SQLITE_DELETE, "entry", "DELETE on entry"),
        (sqlite3.SQLITE_INSERT, "entry", "INSERT on entry"),
        (sqlite3.SQLITE_UPDATE, "entry", "UPDATE on entry"),
        (sqlite3.SQLITE_ATTACH, "x.db", "ATTACH x.db"),
        (sqlite3.SQLITE_CREATE_TABLE, "t", "CREATE TABLE t"),
        (sqlite3.SQLITE_TRANSACTION, None, "TRANSACTION"),
        (9999, None, "action 9999"),
    ],
)
def test_the_authorizer_names_what_it_denied(action: int, arg1: str | None, words: str) -> None:
    guard = SqliteGuard(5)
    assert guard.authorize(action, arg1, None, None, None) == sqlite3.SQLITE_DENY
    assert guard.denied == words
    guard.authorize(sqlite3.SQLITE_DROP_TABLE, "other", None, None, None)
    assert guard.denied == words  # the first denial is the one reported


def test_the_authorizer_allows_reading() -> None:
    guard = SqliteGuard(5)
    for action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        assert guard.authorize(action, "entry", "id", None, None) == sqlite3.SQLITE_OK


def test_the_progress_handler_interrupts_only_past_the_deadline() -> None:
    guard = SqliteGuard(0.2)
    assert guard.progress() == 0 and not guard.timed_out
    time.sleep(0.3)
    assert guard.progress() == 1 and guard.timed_out


def test_the_limits_are_the_documented_ones() -> None:
    assert (MAX_LENGTH, MAX_SQL_LENGTH, MAX_COLUMNS, MAX_LIKE_PATTERN) == (
        16 * 1024 * 1024,
        100_000,
        500,
        1_000,
    )
    assert MAX_RESULT_BYTES == 64 * 1024 * 1024
