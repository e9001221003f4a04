"""A lean read path over a SQLite catalogue, for the commands people type most.

``list``, ``show``, ``sql`` and ``db current`` answer from a SQLite file with the standard
library alone: no SQLAlchemy, pydantic, Alembic or pandas is imported (together they are
most of a second before the first row). The schema revision is read from the
``alembic_version`` row and compared with the newest migration's id, read from the
migration files; only a mismatch (or PostgreSQL, or a catalogue file not made yet) takes
the full path, which migrates. The queries here say in SQL what
:mod:`securitynet.catalogue.queries` says with SQLAlchemy; a test holds both to the same
answers.

    >>> with open_lite() as lite:          # None: use the Catalogue API instead
    ...     lite.search({"dataset": "CIFAR-10"}, sort="top1", descending=True, limit=5)
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from securitynet.catalogue.dbfile import check_sqlite_file, sqlite_file
from securitynet.errors import CatalogueError, DamagedCatalogueError, InvalidQueryError

#: The columns of a listing row, as :class:`securitynet.records.EntrySummary` names them.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "name",
    "architecture",
    "family",
    "num_classes",
    "input_size",
    "params",
    "gflops",
    "licence",
    "dataset",
    "top1",
    "top1_best",
    "top1_best_size",
    "same_weights_as",
    "test_net",
    "removed_upstream",
)
#: Sort keys (as :data:`securitynet.catalogue.queries.SORT_KEYS`) and whether NULLs may occur.
SORT_COLUMNS: dict[str, bool] = {
    "top1": True,
    "params": True,
    "gflops": True,
    "id": False,
    "name": False,
    "source": False,
    "dataset": True,
    "family": True,
    "num_classes": True,
    "first_seen": False,
    "last_seen": False,
}
_BOUNDS = {"top1": ("min_top1", "max_top1"), "params": ("min_params", "max_params")}
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]+)['\"]|None)", re.MULTILINE)


def env_database_url() -> tuple[str, bool]:
    """The catalogue URL as :class:`~securitynet.settings.Settings` resolves it (read from
    the environment without pydantic), and whether it is the default location."""
    url = os.environ.get("SECURITYNET_DATABASE_URL", "").strip()
    if url:
        return url, False
    home = os.environ.get("SECURITYNET_HOME", "").strip()
    if home:
        root = Path(home).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_data_dir("securitynet", appauthor=False))
    return f"sqlite:///{root / 'catalogue.db'}", True


def env_number(name: str, default: float) -> float:
    """A numeric ``SECURITYNET_<name>`` setting; a value that does not parse is left to the
    full settings to refuse (the lean path then steps aside)."""
    raw = os.environ.get(f"SECURITYNET_{name}", "").strip()
    return float(raw) if raw else default


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration's revision id, read from the files (no Alembic import).

    None when the files do not form one line (the full path then decides)."""
    from securitynet.resources import resource_dir

    revisions: dict[str, str | None] = {}
    for path in (resource_dir("migrations") / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(text), _DOWN.search(text)
        if rev is None or down is None:
            return None
        revisions[rev.group(1)] = down.group(1)
    parents = {d for d in revisions.values() if d is not None}
    heads = [r for r in revisions if r not in parents]
    return heads[0] if len(heads) == 1 else None


def stored_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: a database without our schema
        return None
    return str(row[0]) if row else None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class EntryView:
    """One entry with its child rows, as ``show`` prints it (plain values, no pydantic)."""

    id: str
    scalars: dict[str, Any]
    datasets: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["scalars"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class FileView:
    url: str
    sha256: str | None
    checksum: str | None
    checksum_algo: str | None
    size: int | None
    format: str | None
    role: str


class LiteCatalogue:
    """A read-only connection to a SQLite catalogue at the current schema revision."""

    def __init__(self, path: Path, conn: sqlite3.Connection, url: str) -> None:
        self.path, self.conn, self.url = path, conn, url

    # --- listing ----------------------------------------------------------------------------

    def _text_index(self) -> bool:
        from securitynet.catalogue.textsearch import HAS_INDEX_SQL

        return self.conn.execute(HAS_INDEX_SQL).fetchone() is not None

    def _where(self, filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
        cond: list[str] = []
        args: list[Any] = []
        if filters.get("source"):
            from securitynet.ids import normalise_source

            cond.append("source = ?")
            args.append(normalise_source(filters["source"]))
        if filters.get("dataset"):
            from securitynet.annotate.datasets import canonical_dataset  # its tables: only here

            wanted = filters["dataset"]
            canonical = canonical_dataset(wanted)
            if canonical:
                cond.append("dataset = ?")
                args.append(canonical)
            else:
                cond.append("lower(dataset) = ?")
                args.append(wanted.strip().lower())
        for facet in ("family", "architecture"):
            if filters.get(facet):
                cond.append(f"lower({facet}) = ?")
                args.append(str(filters[facet]).strip().lower())
        if filters.get("licence"):
            from securitynet.annotate.licences import spdx_licence

            wanted = str(filters["licence"])
            cond.append("lower(licence) = ?")
            args.append((spdx_licence(wanted) or wanted.strip()).lower())
        for key, sql in (
            ("num_classes", "num_classes = ?"),
            ("min_params", "params >= ?"),
            ("max_params", "params <= ?"),
            ("min_top1", "top1 >= ?"),
            ("max_top1", "top1 <= ?"),
        ):
            if filters.get(key) is not None:
                cond.append(sql)
                args.append(filters[key])
        if filters.get("text") and str(filters["text"]).strip():
            from securitynet.catalogue.textsearch import sqlite_match

            match, match_args = sqlite_match(str(filters["text"]), index=self._text_index())
            cond.append(match)
            args += match_args
        if not filters.get("include_removed"):
            cond.append("removed_upstream = 0")
        if not filters.get("include_shared_weights"):  # each checkpoint once, as the ORM path
            cond.append("same_weights_as IS NULL")
        if not filters.get("include_test_nets"):
            cond.append("test_net = 0")
        return (" WHERE " + " AND ".join(cond)) if cond else "", args

    def search(
        self,
        filters: Mapping[str, Any],
        *,
        sort: str = "top1",
        descending: bool = True,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``SUMMARY_COLUMNS`` matching every filter, as the ORM search orders them."""
        if sort not in SORT_COLUMNS:
            raise InvalidQueryError(f"unknown sort key {sort!r}", value=sort)
        where, args = self._where(filters)
        order = f"{sort} {'DESC' if descending else 'ASC'}"
        if SORT_COLUMNS[sort] and all(filters.get(b) is None for b in _BOUNDS.get(sort, ())):
            order += " NULLS LAST"
        sql = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM entry{where} ORDER BY {order}, id"
        if limit is not None:
            sql += " LIMIT ?"
            args = [*args, limit]
        rows = self._query(sql, args)
        return [
            {
                **dict(zip(SUMMARY_COLUMNS, row, strict=True)),
                "test_net": bool(row[-2]),
                "removed_upstream": bool(row[-1]),
            }
            for row in rows
        ]

    def count(self, filters: Mapping[str, Any]) -> int:
        where, args = self._where(filters)
        return int(self._query(f"SELECT count(*) FROM entry{where}", args)[0][0])

    # --- one entry --------------------------------------------------------------------------

    def find(self, entry_id: str) -> EntryView | None:
        """The entry ``entry_id`` (already normalised) with its child rows, or None."""
        cur = self._query("SELECT * FROM entry WHERE id = ?", [entry_id], described=True)
        if not cur:
            return None
        names, row = cur[0]
        scalars = dict(zip(names, row, strict=True))
        scalars["tags"] = _json(scalars.get("tags")) or []
        for key in ("raw", "load_spec"):
            scalars[key] = _json(scalars.get(key))
        scalars["removed_upstream"] = bool(scalars.get("removed_upstream"))
        for key in ("first_seen", "last_seen", "removed_at", "upstream_modified"):
            if key in scalars:
                scalars[key] = _utc(scalars[key])
        view = EntryView(id=entry_id, scalars=scalars)
        view.datasets = self._children(
            "SELECT stage, dataset, raw_name, source, evidence FROM entry_dataset "
            "WHERE entry_id = ? ORDER BY position, id",
            entry_id,
        )
        view.claims = self._children(
            "SELECT dataset, split, metric, value, img_size, kind, source, evidence "
            "FROM accuracy_claim WHERE entry_id = ? ORDER BY id",
            entry_id,
        )
        view.facts = [
            {**f, "value": _json(f["value"])}
            for f in self._children(
                "SELECT key, value, source, evidence FROM fact WHERE entry_id = ? ORDER BY id",
                entry_id,
            )
        ]
        evaluations = self._children(
            "SELECT id, attack, variant, dataset, source, status, created_at FROM evaluation "
            "WHERE entry_id = ? ORDER BY id",
            entry_id,
        )
        metrics: dict[int, list[dict[str, Any]]] = {}
        for m in self._children(
            "SELECT evaluation_id, metric, value, lower, upper FROM evaluation_metric "
            "WHERE evaluation_id IN (SELECT id FROM evaluation WHERE entry_id = ?) ORDER BY id",
            entry_id,
        ):
            metrics.setdefault(int(m.pop("evaluation_id")), []).append(m)
        view.evaluations = [
            {**v, "created_at": _utc(v["created_at"]), "metrics": metrics.get(int(v["id"]), [])}
            for v in evaluations
        ]
        view.files = [
            FileView(**f)
            for f in self._children(
                "SELECT url, sha256, checksum, checksum_algo, size, format, role "
                "FROM weight_file WHERE entry_id = ? ORDER BY id",
                entry_id,
            )
        ]
        view.errors = [
            str(e["message"])
            for e in self._children(
                "SELECT message FROM annotation_error WHERE entry_id = ? ORDER BY id", entry_id
            )
        ]
        return view

    def _children(self, sql: str, entry_id: str) -> list[dict[str, Any]]:
        found = self._query(sql, [entry_id], described=True)
        return [dict(zip(names, row, strict=True)) for names, row in found]

    # --- plumbing ---------------------------------------------------------------------------

    def _query(self, sql: str, args: list[Any], *, described: bool = False) -> list[Any]:
        try:
            cursor = self.conn.execute(sql, args)
            rows = cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.path) from exc
        if described:
            names = tuple(d[0] for d in cursor.description or ())
            return [(names, row) for row in rows]
        return rows

    def close(self) -> None:
        self.conn.close()


def _translate(exc: sqlite3.Error, path: Path) -> CatalogueError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" not in str(exc):
        return CatalogueError(f"cannot read the catalogue at {path}: {exc}", path=str(path))
    return DamagedCatalogueError(
        f"the catalogue file {path} is damaged ({exc}); it was left as it is", path=str(path)
    )


@contextmanager
def open_lite(url: str | None = None) -> Iterator[LiteCatalogue | None]:
    """The lean reader for the catalogue at ``url`` (default: from the environment), or None
    when the full path must answer: not a SQLite file, not made yet, or at another revision.

    Raises what the full path would for a damaged file or a folder that does not exist."""
    given, default = (url, False) if url is not None else env_database_url()
    path = sqlite_file(given)
    if path is None or given.split("://", 1)[0] not in ("sqlite", "sqlite+pysqlite"):
        yield None
        return
    check_sqlite_file(path, create=default)
    if not path.is_file() or path.stat().st_size == 0:
        yield None  # a new catalogue: the full path creates and migrates it
        return
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        yield None
        return
    try:
        try:
            revision = stored_revision(conn)
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, path) from exc
        head = head_revision()
        if head is None or revision != head:
            yield None
            return
        yield LiteCatalogue(path, conn, given)
    finally:
        conn.close()


def sql_limits() -> tuple[int, float]:
    """``(max rows, timeout)`` of read-only SQL from the environment, the settings' defaults."""
    return int(env_number("SQL_MAX_ROWS", 10_000)), env_number("SQL_TIMEOUT", 10.0)
