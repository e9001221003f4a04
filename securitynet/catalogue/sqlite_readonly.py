"""Read-only SQL on a SQLite catalogue: layers that each hold on their own.

:func:`run_sqlite` runs one statement on a connection that cannot write (``mode=ro``,
``PRAGMA query_only``, an authorizer that allows reading and nothing else), whose values
are bounded (``setlimit``), inside a child process that is killed at the deadline and whose
data segment is capped (``RLIMIT_DATA``). Which layers are on is a :class:`SqliteLayers`
(all of them, except in tests that show each one holds alone).

Worst cases, with every layer on:

- **time**: the deadline plus the time to notice and kill the child (``_POLL`` seconds, and
  a fork, tens of ms). The progress handler alone does not bound time: SQLite consults it
  between VM steps, and one step over values of ``SQLITE_LIMIT_LENGTH`` bytes (``instr``,
  ``LIKE``, ``replace`` on 16 MiB) can run for hours; that is what the child is for.
- **memory**: the child's data segment grows by at most ``MEMORY_LIMIT`` (an allocation past
  it fails: a typed error, not a swapped machine); no value is longer than ``MAX_LENGTH``;
  the parent receives at most ``max_rows`` rows and ``MAX_RESULT_BYTES`` bytes of values.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

from securitynet.errors import (
    ConfigurationError,
    InvalidQueryError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)

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

#: SQLite functions denied even inside a SELECT (off or absent by default here; denied in
#: case an extension or a build brings them: the sqlite3 shell's fileio, for one).
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})

MIB = 1024 * 1024
#: Longest string or blob a query may hold (the catalogue's largest cells, label sets and
#: raw upstream payloads, are well under 1 MiB).
MAX_LENGTH = 16 * MIB
#: Longest statement text: nobody types 100 KB of SQL.
MAX_SQL_LENGTH = 100_000
#: Most columns in a result, table, index or GROUP BY.
MAX_COLUMNS = 500
#: Longest LIKE / GLOB pattern (matching is O(text x pattern)).
MAX_LIKE_PATTERN = 1_000
#: What the child's data segment may grow by while it runs the statement.
MEMORY_LIMIT = 512 * MIB
#: Bytes of values handed back (the rows after this one are dropped, the result truncated).
MAX_RESULT_BYTES = 64 * MIB

_PROGRESS_STEPS = 1_000  # VM instructions between two looks at the clock (~10 µs)
_POLL = 0.02  # seconds between two looks at the child


@dataclass(frozen=True)
class SqliteLayers:
    """Which read-only layers are on. All are, always, outside the tests of each layer."""

    uri_readonly: bool = True  # the file is opened with mode=ro
    query_only: bool = True  # PRAGMA query_only=ON
    authorizer: bool = True  # reading only; ATTACH, pragmas that set, DENIED_FUNCTIONS denied
    limits: bool = True  # setlimit: value length, statement length, columns, LIKE patterns
    progress: bool = True  # the progress handler interrupts between VM steps past the deadline
    child: bool = True  # a child process, killed at the deadline, with RLIMIT_DATA


_SQLITE_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)  # named in the module from Python 3.11
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, _SQLITE_RECURSIVE})
#: Authorizer action codes -> what a refusal calls them.
_ACTION_NAMES = {
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
_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})


class SqliteGuard:
    """The authorizer and progress handler of one read-only SQLite connection."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.timed_out = False
        self.denied: str | None = None

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in DENIED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in SQLITE_INTROSPECTION_PRAGMAS:
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        if target:
            what += f" on {target}" if action in _WRITES else f" {target}"
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


def open_sqlite_readonly(
    path: Path, guard: SqliteGuard, layers: SqliteLayers = SqliteLayers()
) -> sqlite3.Connection:
    """A connection to ``path`` that cannot write, attach, or run past ``guard``'s deadline."""
    if not path.is_file():
        raise ConfigurationError(
            f"no catalogue database at {path}", hint="Run 'securitynet sync' first."
        )
    mode = "?mode=ro" if layers.uri_readonly else ""
    conn = sqlite3.connect(
        f"{path.as_uri()}{mode}", uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        if layers.query_only:
            conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        if layers.limits:
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_LENGTH)
            conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH)
            conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, MAX_COLUMNS)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN)
        if layers.authorizer:
            conn.set_authorizer(guard.authorize)
        if layers.progress:
            conn.set_progress_handler(guard.progress, _PROGRESS_STEPS)
    except BaseException:
        conn.close()
        raise
    return conn


# --- running one statement ------------------------------------------------------------------

#: What a run ended with, across the pipe from the child: ("ok", columns, rows, truncated)
#: or ("error", kind, message, detail).
_Message = tuple[Any, ...]


def _value_bytes(value: object) -> int:
    return len(value) if isinstance(value, (str, bytes)) else 8


def _execute(
    path: Path, statement: str, *, max_rows: int, timeout: float, layers: SqliteLayers
) -> _Message:
    """Run ``statement`` here; the outcome as a message (never raises for an SQL error)."""
    guard = SqliteGuard(timeout)
    conn = open_sqlite_readonly(path, guard, layers)
    try:
        cursor = conn.execute(statement)
        columns = tuple(d[0] for d in cursor.description or ())
        rows: list[tuple[Any, ...]] = []
        size = 0
        truncated = False
        while cursor.description:
            row = cursor.fetchone()
            if row is None:
                break
            size += sum(_value_bytes(v) for v in row)
            if len(rows) == max_rows or size > MAX_RESULT_BYTES:
                truncated = True
                break
            rows.append(tuple(row))
        cursor.close()
        return ("ok", columns, rows, truncated)
    except MemoryError:
        return ("error", "memory", "the query needs more memory than it may use", None)
    except sqlite3.Error as exc:
        return ("error", *_classify(exc, guard))
    finally:
        conn.close()


def _classify(exc: sqlite3.Error, guard: SqliteGuard) -> tuple[str, str, str | None]:
    name = getattr(exc, "sqlite_errorname", "")
    if guard.timed_out:
        return "timeout", str(exc), None
    if guard.denied or name == "SQLITE_READONLY":
        return "denied", str(exc), guard.denied
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in str(exc):
        return "statements", str(exc), None
    if name == "SQLITE_TOOBIG":
        return "toobig", str(exc), None
    if name == "SQLITE_NOMEM":
        return "memory", str(exc), None
    return "sql", str(exc), None


def _set_memory_limit(budget: int) -> None:
    """RLIMIT_DATA at this process's data segment plus ``budget`` (Linux; a no-op elsewhere)."""
    try:
        import resource

        with open("/proc/self/status", "rb") as fh:
            used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith(b"VmData:"))
    except (ImportError, OSError, StopIteration, ValueError):
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = used + budget if hard == resource.RLIM_INFINITY else min(used + budget, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _child(conn: Connection, path: Path, statement: str, kwargs: dict[str, Any]) -> None:
    _set_memory_limit(MEMORY_LIMIT)
    try:
        message = _execute(path, statement, **kwargs)
    except MemoryError:
        message = ("error", "memory", "the query needs more memory than it may use", None)
    try:
        conn.send(message)
    except MemoryError:
        conn.send(("error", "memory", "the result needs more memory than it may use", None))


def _in_child(path: Path, statement: str, *, timeout: float, **kwargs: Any) -> _Message:
    """:func:`_execute` in a forked child, killed at ``timeout`` seconds."""
    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child,
        args=(send, path, statement, {"timeout": timeout, **kwargs}),
        name="securitynet-sql",
        daemon=True,
    )
    process.start()
    send.close()
    try:
        # The child's own progress handler usually stops the statement in time, with a
        # cleaner message; the deadline here holds whatever the statement does.
        deadline = time.monotonic() + timeout + 2 * _POLL
        while True:
            if receive.poll(_POLL):
                try:
                    return receive.recv()
                except EOFError:
                    break  # died without a word
            if time.monotonic() > deadline:
                return ("error", "timeout", "killed at the deadline", None)
            if not process.is_alive() and not receive.poll(0):
                break
        code = process.exitcode
        return ("error", "crashed", f"the query process ended with status {code}", None)
    finally:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
        process.join(5)
        receive.close()


def run_sqlite(
    engine: Engine,
    statement: str,
    *,
    max_rows: int,
    timeout: float,
    layers: SqliteLayers = SqliteLayers(),
) -> tuple[tuple[str, ...], list[tuple[Any, ...]], bool]:
    """``(columns, rows, truncated)`` of ``statement`` on the catalogue file behind ``engine``."""
    return run_sqlite_file(
        sqlite_database_path(engine), statement, max_rows=max_rows, timeout=timeout, layers=layers
    )


def run_sqlite_file(
    path: Path,
    statement: str,
    *,
    max_rows: int,
    timeout: float,
    layers: SqliteLayers = SqliteLayers(),
) -> tuple[tuple[str, ...], list[tuple[Any, ...]], bool]:
    """``(columns, rows, truncated)`` of ``statement`` on the SQLite file ``path``."""
    if not path.is_file():
        raise ConfigurationError(
            f"no catalogue database at {path}", hint="Run 'securitynet sync' first."
        )
    kwargs: dict[str, Any] = {"max_rows": max_rows, "timeout": timeout, "layers": layers}
    message = (
        _in_child(path, statement, **kwargs)
        if layers.child
        else _execute(path, statement, **kwargs)
    )
    if message[0] == "ok":
        _, columns, rows, truncated = message
        return columns, rows, truncated
    _, kind, text, detail = message
    raise _error(kind, text, detail, statement=statement, timeout=timeout)


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _error(
    kind: str, text: str, detail: str | None, *, statement: str, timeout: float
) -> Exception:
    if kind == "timeout":
        return QueryTimeoutError(
            f"the query ran past its time limit of {timeout:g} s", timeout=timeout
        )
    if kind == "denied":
        what = detail or "writing"
        return ReadOnlyViolationError(
            f"refused: {what} is not allowed in a read-only query", statement=statement
        )
    if kind == "statements":
        return InvalidQueryError(
            "only one statement may run at a time", hint="Remove everything after the first ';'."
        )
    if kind == "toobig":
        return InvalidQueryError(
            f"refused: a value or the statement is larger than read-only SQL allows "
            f"({MAX_LENGTH // MIB} MiB per value, {MAX_SQL_LENGTH:,} characters of SQL, "
            f"{MAX_COLUMNS} columns)",
            statement=statement,
        )
    if kind == "memory":
        return InvalidQueryError(
            f"refused: the query needs more than {MEMORY_LIMIT // MIB} MiB of memory",
            statement=statement,
            hint="Select fewer or smaller values.",
        )
    if kind == "crashed":
        return InvalidQueryError(f"the query failed: {text}", statement=statement)
    return InvalidQueryError(f"SQL error: {_one_line(text)}", statement=statement)
