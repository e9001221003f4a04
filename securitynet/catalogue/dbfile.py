"""Checks on a SQLite catalogue file before anything opens it (standard library only).

A damaged file must give one line saying so, and stay exactly as it was: SQLite itself,
asked to open a truncated or foreign file, may answer only on the first query (with a
traceback from deep inside a migration) and may already have set WAL mode on it. Reading
the 100-byte header first tells a new, a whole and a damaged file apart without writing.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from securitynet.errors import CatalogueError, ConfigurationError, DamagedCatalogueError

SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER = 100

def sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///path`` URL names; None for other URLs, memory and URI forms."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return None
    path = unquote(rest[1:].split("?", 1)[0])
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).expanduser()


def check_sqlite_file(path: Path, *, create: bool = False) -> None:
    """Refuse a catalogue file that cannot be used, without touching it.

    A missing file is a new catalogue when its folder exists (``create``: make the folder
    too, for the default location); otherwise :class:`ConfigurationError`. An existing file
    must carry SQLite's header and be as long as that header says, or
    :class:`DamagedCatalogueError` says what is wrong and what to do.
    """
    if not path.exists():
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise ConfigurationError(
                f"the catalogue's folder {path.parent} does not exist (nothing was created)",
                hint="Create the folder, or point SECURITYNET_DATABASE_URL at a file in an "
                "existing one (unset, the catalogue lives in $SECURITYNET_HOME).",
                path=str(path),
            )
        return
    if path.is_dir():
        raise ConfigurationError(
            f"the catalogue path {path} is a folder, not a file",
            hint="Point SECURITYNET_DATABASE_URL at a file, e.g. sqlite:///path/catalogue.db.",
            path=str(path),
        )
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(_HEADER)
    except OSError as exc:
        raise CatalogueError(f"cannot read the catalogue file {path}: {exc}", path=str(path)) from exc
    if size == 0:
        return  # SQLite's own way of writing a new database starts from an empty file
    if not header.startswith(SQLITE_MAGIC):
        raise DamagedCatalogueError(
            f"the catalogue file {path} is not a SQLite database (damaged or overwritten); "
            "it was left as it is",
            path=str(path),
        )
    if len(header) < _HEADER:
        raise DamagedCatalogueError(
            f"the catalogue file {path} is truncated ({size} bytes); it was left as it is",
            path=str(path),
        )
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the page count is valid when the change counter matches "version-valid-for"
    if pages and header[24:28] == header[92:96] and size < pages * page_size:
        raise DamagedCatalogueError(
            f"the catalogue file {path} is truncated ({size:,} of {pages * page_size:,} bytes); "
            "it was left as it is",
            path=str(path),
        )
