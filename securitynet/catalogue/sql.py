"""Read-only SQL over the catalogue, with a time limit, a row cap and bounded memory (after datasette).

    >>> result = run_sql(engine, "SELECT dataset, entries FROM v_entries_per_dataset")
    >>> result.columns, result.rows, result.truncated, result.elapsed

One statement runs per call. Writes are refused by the database itself, not by matching
keywords (the keyword check below only words the refusal better). Each layer holds on its
own (the tests switch the others off through :data:`_LAYERS`):

- **SQLite** (:mod:`securitynet.catalogue.sqlite_readonly`, where the worst cases are
  stated): ``mode=ro``, ``PRAGMA query_only``, an authorizer that allows reading and nothing
  else, ``setlimit`` on value and statement length, columns and LIKE patterns, a progress
  handler at the deadline, all inside a child process killed at the deadline with its
  data segment capped.
- **PostgreSQL**: ``sql`` connects as the role in ``SECURITYNET_SQL_DATABASE_URL`` (a login
  role that may only ``SELECT``: the README gives the SQL that creates it) and refuses to
  run as a role that could read or write server files, run programs or replicate (a
  superuser, ``REPLICATION``, ``pg_read_server_files``, ``pg_write_server_files``,
  ``pg_execute_server_program``): ``SET ROLE`` would be no boundary, since
  ``set_config('role', ...)`` inside a SELECT undoes it. Then a ``READ ONLY`` transaction
  with ``SET LOCAL statement_timeout``, always rolled back; the statement is sent with the
  extended protocol, which refuses a second statement, and rows are read through a
  server-side cursor so the cap also bounds memory. The connection is discarded afterwards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from securitynet.catalogue.sqlite_readonly import SqliteLayers, run_sqlite, run_sqlite_file
from securitynet.errors import (
    ConfigurationError,
    InvalidQueryError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from sqlalchemy import Engine

#: First keywords of the statements we run, per backend. Anything else is refused before it
#: reaches the database; what these let through is still checked by the database.
QUERY_KEYWORDS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"select", "with", "values", "explain", "pragma"}),
    "postgresql": frozenset({"select", "with", "values", "table", "explain", "show"}),
}


@dataclass(frozen=True)
class Layers:
    """Which read-only layers are on: all, except in the tests that show each holds alone."""

    keyword: bool = True  # the first keyword must start a query
    sqlite: SqliteLayers = field(default_factory=SqliteLayers)
    pg_role_check: bool = True  # refuse a PostgreSQL role with server-file or replication powers
    pg_read_only: bool = True  # a READ ONLY transaction


#: The layers every call uses (tests replace it to switch layers off one at a time).
_LAYERS = Layers()

_LEADING_NOISE = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a read-only query returned: at most ``max_rows`` rows, and whether more existed."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    elapsed: float  # seconds, executing and fetching

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts; a repeated column name gets a suffix (``count``, ``count_2``)."""
        names = unique_names(self.columns)
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame.from_records(list(self.rows), columns=unique_names(self.columns))


def unique_names(columns: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in columns:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def first_keyword(statement: str) -> str:
    """The statement's first word, lowercased, past comments and opening parentheses."""
    pos = 0
    while match := _LEADING_NOISE.match(statement, pos):
        pos = match.end()
    word = _WORD.match(statement, pos)
    return word.group(0).lower() if word else ""


def run_sql(
    engine: Engine,
    statement: str,
    *,
    max_rows: int,
    timeout: float,
    reader_url: str | None = None,
) -> QueryResult:
    """Run one read-only ``statement`` on the catalogue behind ``engine``, or on the same
    database reached as ``reader_url`` (``SECURITYNET_SQL_DATABASE_URL``), when given.

    Raises :class:`ReadOnlyViolationError` for anything that would write,
    :class:`QueryTimeoutError` past ``timeout`` seconds, :class:`InvalidQueryError` for an
    SQL error (with the database's message), :class:`ConfigurationError` for a PostgreSQL
    role that may do more than read.
    """
    keyword = _check(statement, max_rows=max_rows, timeout=timeout)
    if reader_url:
        return _run_as_reader(reader_url, statement, max_rows=max_rows, timeout=timeout)
    backend = engine.url.get_backend_name()
    _check_backend(statement, keyword, backend)
    layers = _LAYERS
    started = time.perf_counter()
    if backend == "sqlite":
        columns, rows, truncated = run_sqlite(
            engine, statement, max_rows=max_rows, timeout=timeout, layers=layers.sqlite
        )
        return QueryResult(columns, tuple(rows), truncated, time.perf_counter() - started)
    return _run_postgres(
        engine, statement, keyword=keyword, max_rows=max_rows, timeout=timeout, layers=layers
    )


def run_sql_file(path: Path, statement: str, *, max_rows: int, timeout: float) -> QueryResult:
    """:func:`run_sql` on the SQLite catalogue file ``path``, with every SQLite layer, and no
    engine (the CLI's lean path: no SQLAlchemy import)."""
    keyword = _check(statement, max_rows=max_rows, timeout=timeout)
    _check_backend(statement, keyword, "sqlite")
    started = time.perf_counter()
    columns, rows, truncated = run_sqlite_file(
        path.expanduser().resolve(),
        statement,
        max_rows=max_rows,
        timeout=timeout,
        layers=_LAYERS.sqlite,
    )
    return QueryResult(columns, tuple(rows), truncated, time.perf_counter() - started)


def _check(statement: str, *, max_rows: int, timeout: float) -> str:
    """The statement's first keyword, after refusing bad limits and an empty statement."""
    if max_rows < 1:
        raise InvalidQueryError("max_rows must be at least 1", value=max_rows)
    if timeout <= 0:
        raise InvalidQueryError("timeout must be more than 0 seconds", value=timeout)
    keyword = first_keyword(statement)
    if not keyword:
        raise InvalidQueryError(
            "the query is empty", hint='e.g. securitynet sql "SELECT * FROM v_entries_per_source"'
        )
    return keyword


def _check_backend(statement: str, keyword: str, backend: str) -> None:
    """Refuse backends we do not guard, and statements that are no query on ``backend``."""
    if backend not in QUERY_KEYWORDS:
        raise ConfigurationError(
            f"read-only SQL is not supported on {backend}", hint="Use SQLite or PostgreSQL."
        )
    if _LAYERS.keyword and keyword not in QUERY_KEYWORDS[backend]:
        raise ReadOnlyViolationError(
            f"refused: {keyword.upper()} is not a query", statement=statement
        )


def _run_as_reader(url: str, statement: str, *, max_rows: int, timeout: float) -> QueryResult:
    from sqlalchemy.pool import NullPool

    from securitynet.catalogue.engine import create_catalogue_engine

    engine = create_catalogue_engine(url, poolclass=NullPool)
    try:
        return run_sql(engine, statement, max_rows=max_rows, timeout=timeout)
    finally:
        engine.dispose()


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


# --- PostgreSQL -----------------------------------------------------------------------------

_PG_CURSOR_KEYWORDS = frozenset({"select", "with", "values", "table"})  # what DECLARE CURSOR takes
_PG_READ_ONLY_VIOLATION = "25006"  # read_only_sql_transaction
_PG_QUERY_CANCELED = "57014"  # query_canceled: statement_timeout

#: The powers a role for read-only SQL must not have, as (column of the query below, words).
PG_FORBIDDEN_POWERS = (
    ("rolsuper", "is a superuser"),
    ("rolreplication", "has REPLICATION"),
    ("read_files", "is a member of pg_read_server_files"),
    ("write_files", "is a member of pg_write_server_files"),
    ("programs", "is a member of pg_execute_server_program"),
)
_PG_POWERS_QUERY = """
SELECT r.rolname, r.rolsuper, r.rolreplication,
       pg_has_role(r.oid, 'pg_read_server_files', 'MEMBER') AS read_files,
       pg_has_role(r.oid, 'pg_write_server_files', 'MEMBER') AS write_files,
       pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER') AS programs
FROM pg_roles AS r WHERE r.rolname = session_user
"""


def pg_role_powers(conn: Any) -> tuple[str, list[str]]:
    """The session user of the psycopg connection ``conn`` and the forbidden powers it has."""
    with conn.cursor() as cursor:
        cursor.execute(_PG_POWERS_QUERY)
        row = cursor.fetchone()
        names = [d.name for d in cursor.description]
    conn.rollback()
    if row is None:  # no pg_roles row for the session user: assume the worst
        return "?", ["cannot be looked up in pg_roles"]
    facts = dict(zip(names, row, strict=True))
    powers = [words for column, words in PG_FORBIDDEN_POWERS if facts[column]]
    return str(facts["rolname"]), powers[:1] if facts["rolsuper"] else powers


def _check_pg_role(conn: Any) -> None:
    role, powers = pg_role_powers(conn)
    if powers:
        raise ConfigurationError(
            f"refused: read-only SQL will not run as PostgreSQL role {role!r}, which "
            f"{' and '.join(powers)} (it could read server files or outlive the rollback)",
            hint="Create the read-only role in the README ('A reader role for securitynet sql') "
            "and set SECURITYNET_SQL_DATABASE_URL to connect as it.",
            role=role,
            powers=powers,
        )


def _run_postgres(
    engine: Engine, statement: str, *, keyword: str, max_rows: int, timeout: float, layers: Layers
) -> QueryResult:
    import psycopg

    started = time.perf_counter()
    use_cursor = keyword in _PG_CURSOR_KEYWORDS
    with engine.connect() as sa_conn:
        conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
        try:
            if layers.pg_role_check:
                _check_pg_role(conn)
            try:
                columns, rows = _pg_fetch(
                    conn,
                    statement,
                    max_rows=max_rows,
                    timeout=timeout,
                    use_cursor=use_cursor,
                    read_only=layers.pg_read_only,
                )
            except (psycopg.errors.SyntaxError, psycopg.errors.FeatureNotSupported):
                if not use_cursor:
                    raise
                # A cursor cannot hold this statement (WITH ... DELETE, a data-modifying WITH):
                # run it plainly, still read-only, and let PostgreSQL say what it makes of it.
                columns, rows = _pg_fetch(
                    conn,
                    statement,
                    max_rows=max_rows,
                    timeout=timeout,
                    use_cursor=False,
                    read_only=layers.pg_read_only,
                )
        except psycopg.Error as exc:
            code = getattr(exc, "sqlstate", None)
            message = _one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if code == _PG_QUERY_CANCELED:
                raise QueryTimeoutError(
                    f"the query ran past its time limit of {timeout:g} s", timeout=timeout
                ) from exc
            if code == _PG_READ_ONLY_VIOLATION:
                raise ReadOnlyViolationError(f"refused: {message}", statement=statement) from exc
            raise InvalidQueryError(f"SQL error: {message}", statement=statement) from exc
        finally:
            sa_conn.invalidate()  # never hand this connection back to the pool
    return QueryResult(
        columns=columns,
        rows=tuple(tuple(r) for r in rows[:max_rows]),
        truncated=len(rows) > max_rows,
        elapsed=time.perf_counter() - started,
    )


def _pg_fetch(
    conn: Any, statement: str, *, max_rows: int, timeout: float, use_cursor: bool, read_only: bool
) -> tuple[tuple[str, ...], list[Any]]:
    conn.rollback()  # a fresh transaction: its mode can only be set before its first query
    try:
        if read_only:
            conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(f"SET LOCAL statement_timeout = {max(1, round(timeout * 1000))}")
        if use_cursor:
            # Server-side cursor: DECLARE is sent with the extended protocol (one statement
            # only) and FETCH brings max_rows + 1 rows, never the whole result.
            with conn.cursor(name="securitynet_sql") as cursor:
                cursor.execute(statement)
                columns = tuple(d.name for d in cursor.description or ())
                return columns, cursor.fetchmany(max_rows + 1)
        with conn.cursor() as cursor:
            # EXPLAIN, SHOW: small results. binary=True forces the extended protocol, which
            # refuses a second statement.
            cursor.execute(statement, binary=True)
            if cursor.description is None:
                return (), []
            return tuple(d.name for d in cursor.description), cursor.fetchmany(max_rows + 1)
    finally:
        conn.rollback()
