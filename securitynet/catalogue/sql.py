"""Read-only SQL over the catalogue, with a time limit and a row cap (after datasette).

    >>> result = run_sql(engine, "SELECT dataset, entries FROM v_entries_per_dataset")
    >>> result.columns, result.rows, result.truncated, result.elapsed

One statement runs per call. Writes are refused by the database itself, not by matching
keywords (the keyword check below only words the refusal better):

- **SQLite**: a separate connection opened with ``mode=ro``, ``PRAGMA query_only=ON``, no
  attached databases, and an authorizer that allows reading and nothing else (introspection
  pragmas such as ``table_info`` included; ``ATTACH``, ``writable_schema``, DML and DDL
  denied). A progress handler interrupts the statement when its time is up.
- **PostgreSQL**: a ``READ ONLY`` transaction with ``SET LOCAL statement_timeout``, always
  rolled back; the statement is sent with the extended protocol, which refuses a second
  statement, and rows are read through a server-side cursor so the cap also bounds memory.
  The connection is discarded afterwards (session-level state such as advisory locks dies
  with it). For a shared server, also give securitynet a role that may only ``SELECT``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securitynet.errors import (
    ConfigurationError,
    InvalidQueryError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

#: First keywords of the statements we run, per backend. Anything else is refused before it
#: reaches the database; what these let through is still checked by the database.
QUERY_KEYWORDS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"select", "with", "values", "explain", "pragma"}),
    "postgresql": frozenset({"select", "with", "values", "table", "explain", "show"}),
}

#: SQLite pragmas that only describe the schema; every other pragma is denied.
SQLITE_INTROSPECTION_PRAGMAS = frozenset(
    {
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
    }
)

#: SQLite functions denied even inside a SELECT (off by default; denied in case they are not).
_SQLITE_DENIED_FUNCTIONS = frozenset(
    {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}
)

_SQLITE_PROGRESS_STEPS = 1_000  # VM instructions between two looks at the clock (~10 µs)
_SQLITE_MAX_LENGTH = 256 * 1024 * 1024  # largest string or blob a query may build

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


def run_sql(engine: Engine, statement: str, *, max_rows: int, timeout: float) -> QueryResult:
    """Run one read-only ``statement`` on the catalogue behind ``engine``.

    Raises :class:`ReadOnlyViolationError` for anything that would write,
    :class:`QueryTimeoutError` past ``timeout`` seconds, :class:`InvalidQueryError` for an
    SQL error (with the database's message).
    """
    backend = engine.url.get_backend_name()
    keyword = _check(statement, backend, max_rows=max_rows, timeout=timeout)
    if backend == "sqlite":
        return _run_sqlite(
            sqlite_database_path(engine), statement, max_rows=max_rows, timeout=timeout
        )
    return _run_postgres(engine, statement, keyword=keyword, max_rows=max_rows, timeout=timeout)


def run_sql_file(path: Path, statement: str, *, max_rows: int, timeout: float) -> QueryResult:
    """:func:`run_sql` on the SQLite catalogue file ``path`` (no engine: the CLI's lean path)."""
    _check(statement, "sqlite", max_rows=max_rows, timeout=timeout)
    return _run_sqlite(path.expanduser().resolve(), statement, max_rows=max_rows, timeout=timeout)


def _check(statement: str, backend: str, *, max_rows: int, timeout: float) -> str:
    """The statement's first keyword, after refusing limits, backends and statements we do
    not run."""
    if max_rows < 1:
        raise InvalidQueryError("max_rows must be at least 1", value=max_rows)
    if timeout <= 0:
        raise InvalidQueryError("timeout must be more than 0 seconds", value=timeout)
    keyword = first_keyword(statement)
    if not keyword:
        raise InvalidQueryError(
            "the query is empty", hint='e.g. securitynet sql "SELECT * FROM v_entries_per_source"'
        )
    if backend not in QUERY_KEYWORDS:
        raise ConfigurationError(
            f"read-only SQL is not supported on {backend}", hint="Use SQLite or PostgreSQL."
        )
    if keyword not in QUERY_KEYWORDS[backend]:
        raise ReadOnlyViolationError(
            f"refused: {keyword.upper()} is not a query", statement=statement
        )
    return keyword


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)  # named in the module from Python 3.11
_SQLITE_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, _SQLITE_RECURSIVE})
#: Authorizer action codes -> what a refusal calls them.
_SQLITE_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in (
        "CREATE_INDEX",
        "CREATE_TABLE",
        "CREATE_TEMP_INDEX",
        "CREATE_TEMP_TABLE",
        "CREATE_TEMP_TRIGGER",
        "CREATE_TEMP_VIEW",
        "CREATE_TRIGGER",
        "CREATE_VIEW",
        "DELETE",
        "DROP_INDEX",
        "DROP_TABLE",
        "DROP_TEMP_INDEX",
        "DROP_TEMP_TABLE",
        "DROP_TEMP_TRIGGER",
        "DROP_TEMP_VIEW",
        "DROP_TRIGGER",
        "DROP_VIEW",
        "INSERT",
        "PRAGMA",
        "TRANSACTION",
        "UPDATE",
        "ATTACH",
        "DETACH",
        "ALTER_TABLE",
        "REINDEX",
        "ANALYZE",
        "CREATE_VTABLE",
        "DROP_VTABLE",
        "FUNCTION",
        "SAVEPOINT",
    )
}


_SQLITE_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})


class _SqliteGuard:
    """The authorizer and progress handler of one read-only SQLite connection."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.timed_out = False
        self.denied: str | None = None

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if action in _SQLITE_ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if (
            action == sqlite3.SQLITE_FUNCTION
            and (arg2 or "").lower() not in _SQLITE_DENIED_FUNCTIONS
        ):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in SQLITE_INTROSPECTION_PRAGMAS:
            return sqlite3.SQLITE_OK
        what = _SQLITE_ACTION_NAMES.get(action, f"action {action}")
        target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        if target:
            what += f" on {target}" if action in _SQLITE_WRITES else f" {target}"
        self.denied = self.denied or what
        return sqlite3.SQLITE_DENY

    def progress(self) -> int:
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1  # non-zero interrupts the statement
        return 0


def sqlite_database_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        raise ConfigurationError(
            "read-only SQL needs the catalogue in a database file, not in memory",
            hint="Set SECURITYNET_DATABASE_URL to sqlite:///path/to/catalogue.db.",
        )
    return Path(database).expanduser().resolve()


def open_sqlite_readonly(path: Path, guard: _SqliteGuard) -> sqlite3.Connection:
    """A connection to ``path`` that cannot write, attach, or run past ``guard``'s deadline."""
    if not path.is_file():
        raise ConfigurationError(
            f"no catalogue database at {path}", hint="Run 'securitynet sync' first."
        )
    conn = sqlite3.connect(
        f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        if hasattr(conn, "setlimit"):  # Python >= 3.11; the authorizer denies ATTACH anyway
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _SQLITE_MAX_LENGTH)
        conn.set_authorizer(guard.authorize)
        conn.set_progress_handler(guard.progress, _SQLITE_PROGRESS_STEPS)
    except BaseException:
        conn.close()
        raise
    return conn


def _is_readonly_error(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11
    return name == "SQLITE_READONLY" if name else "readonly database" in str(exc)


def _run_sqlite(path: Path, statement: str, *, max_rows: int, timeout: float) -> QueryResult:
    guard = _SqliteGuard(timeout)
    started = time.perf_counter()
    conn = open_sqlite_readonly(path, guard)
    try:
        cursor = conn.execute(statement)
        columns = tuple(d[0] for d in cursor.description or ())
        rows = cursor.fetchmany(max_rows + 1) if cursor.description else []
        cursor.close()
    except sqlite3.Error as exc:
        if guard.timed_out:
            raise QueryTimeoutError(
                f"the query ran past its time limit of {timeout:g} s", timeout=timeout
            ) from exc
        if guard.denied or _is_readonly_error(exc):
            what = guard.denied or "writing"
            raise ReadOnlyViolationError(
                f"refused: {what} is not allowed in a read-only query", statement=statement
            ) from exc
        if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in str(exc):
            raise InvalidQueryError(
                "only one statement may run at a time",
                hint="Remove everything after the first ';'.",
            ) from exc
        raise InvalidQueryError(f"SQL error: {_one_line(exc)}", statement=statement) from exc
    finally:
        conn.close()
    return QueryResult(
        columns=columns,
        rows=tuple(tuple(r) for r in rows[:max_rows]),
        truncated=len(rows) > max_rows,
        elapsed=time.perf_counter() - started,
    )


# --- PostgreSQL -----------------------------------------------------------------------------

_PG_CURSOR_KEYWORDS = frozenset({"select", "with", "values", "table"})  # what DECLARE CURSOR takes
_PG_READ_ONLY_VIOLATION = "25006"  # read_only_sql_transaction
_PG_QUERY_CANCELED = "57014"  # query_canceled: statement_timeout


def _run_postgres(
    engine: Engine, statement: str, *, keyword: str, max_rows: int, timeout: float
) -> QueryResult:
    import psycopg

    started = time.perf_counter()
    use_cursor = keyword in _PG_CURSOR_KEYWORDS
    with engine.connect() as sa_conn:
        conn: psycopg.Connection[Any] = sa_conn.connection.driver_connection  # type: ignore[assignment]
        try:
            try:
                columns, rows = _pg_fetch(
                    conn, statement, max_rows=max_rows, timeout=timeout, use_cursor=use_cursor
                )
            except (psycopg.errors.SyntaxError, psycopg.errors.FeatureNotSupported):
                if not use_cursor:
                    raise
                # A cursor cannot hold this statement (WITH ... DELETE, a data-modifying WITH):
                # run it plainly, still read-only, and let PostgreSQL say what it makes of it.
                columns, rows = _pg_fetch(
                    conn, statement, max_rows=max_rows, timeout=timeout, use_cursor=False
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
    conn: Any, statement: str, *, max_rows: int, timeout: float, use_cursor: bool
) -> tuple[tuple[str, ...], list[Any]]:
    conn.rollback()  # a fresh transaction: its mode can only be set before its first query
    try:
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
