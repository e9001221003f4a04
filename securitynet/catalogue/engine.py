"""Engines, sessions and schema migration for the catalogue database.

SQLite (the embedded default) gets WAL, foreign keys and a busy timeout on every
connection; ``postgresql://`` URLs are routed to psycopg 3. :func:`migrate` runs Alembic to
head; :func:`open_engine` does that on first use so a new database is ready at once.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from securitynet.catalogue.dbfile import check_sqlite_file, sqlite_file
from securitynet.errors import (
    CatalogueError,
    ConfigurationError,
    DamagedCatalogueError,
    MigrationError,
)
from securitynet.resources import resource_dir

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg://`` (psycopg 3); anything else unchanged."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"not a database URL: {url!r}", hint="e.g. sqlite:///path/catalogue.db"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_catalogue_engine(url: str, *, create_folder: bool = False, **kwargs: Any) -> Engine:
    """A configured engine for ``url`` (no migration).

    A SQLite file is checked first (:func:`~securitynet.catalogue.dbfile.check_sqlite_file`):
    a damaged one is refused untouched, and a missing folder is an error unless
    ``create_folder`` (the default location under ``$SECURITYNET_HOME``)."""
    url = normalise_url(url)
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            path = sqlite_file(url)
            if path is not None:
                check_sqlite_file(path, create=create_folder)
            engine = create_engine(url, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigurationError(
            f"no database driver for {parsed.drivername}",
            hint="For PostgreSQL: pip install 'securitynet[postgres]'.",
        ) from exc
    return engine


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:
        raise MigrationError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise CatalogueError(f"cannot open the catalogue at {engine.url!r}: {exc.orig}") from exc
    except DatabaseError as exc:  # "file is not a database", "disk image is malformed"
        raise DamagedCatalogueError(
            f"the catalogue at {engine.url!r} is damaged ({exc.orig}); it was left as it is"
        ) from exc


def migrate(engine: Engine, revision: str = "head") -> str:
    """Upgrade the database to ``revision`` (default: head); return the revision reached."""
    return _run_migrations(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> str:
    """Downgrade the database to ``revision``; return the revision reached."""
    return _run_migrations(engine, "downgrade", revision)


def _run_migrations(engine: Engine, direction: str, revision: str) -> str:
    from alembic import command

    cfg = _alembic_config(engine)
    step = command.upgrade if direction == "upgrade" else command.downgrade
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            if sqlite:
                # A migration that rebuilds a table on SQLite (batch mode: copy, DROP, rename)
                # would otherwise cascade the DROP into every child row (claims, facts, files,
                # results). The pragma is a no-op inside a transaction, so it comes first.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    step(cfg, revision)
                    if sqlite and (
                        broken := conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    ):
                        raise CatalogueError(
                            f"migrating the catalogue at {engine.url!r} broke a reference "
                            f"({broken[0]} -> {broken[2]}); nothing was changed"
                        )
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()
    except OperationalError as exc:
        raise CatalogueError(f"cannot migrate the catalogue at {engine.url!r}: {exc.orig}") from exc
    note_text_index(engine)
    reached = current_revision(engine)
    log.info("catalogue at revision %s", reached)
    return reached or ""


def stored_revision(engine: Engine) -> str | None:
    """The ``alembic_version`` row read with plain SQL (None: no such table or row); Alembic
    is imported only when this is not the head (its import is most of a cold start)."""
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except OperationalError as exc:
        raise CatalogueError(f"cannot open the catalogue at {engine.url!r}: {exc.orig}") from exc
    except DatabaseError as exc:
        raise DamagedCatalogueError(
            f"the catalogue at {engine.url!r} is damaged ({exc.orig}); it was left as it is"
        ) from exc
    return str(row[0]) if row else None


def ensure_schema(engine: Engine) -> None:
    """Migrate a new or older database to head; refuse one that is newer than we know."""
    from securitynet.catalogue.lite import head_revision as head_from_files

    if (stored := stored_revision(engine)) is not None and stored == head_from_files():
        return
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None and inspect(engine).has_table("entry"):
        raise MigrationError(
            "the database has securitynet tables but no migration stamp",
            hint="Point SECURITYNET_DATABASE_URL at a fresh database, or stamp it with alembic.",
        )
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    if current is not None and script.get_revision(current) is None:
        raise MigrationError(
            f"the database is at revision {current}, which this securitynet does not know",
            hint="Upgrade securitynet, or use another database.",
        )
    migrate(engine)


def open_engine(url: str, *, upgrade: bool = True, create_folder: bool = False) -> Engine:
    engine = create_catalogue_engine(url, create_folder=create_folder)
    if upgrade:
        ensure_schema(engine)
    note_text_index(engine)
    return engine


def note_text_index(engine: Engine) -> None:
    """Note on the engine's dialect whether SQLite's text-search index exists (queries
    compiled for it ask the index only then; see :mod:`~securitynet.catalogue.textsearch`)."""
    if engine.dialect.name != "sqlite":
        return
    from sqlalchemy import text

    from securitynet.catalogue import textsearch

    try:
        with engine.connect() as conn:
            found = conn.execute(text(textsearch.HAS_INDEX_SQL)).first() is not None
    except OperationalError:
        found = False
    setattr(engine.dialect, textsearch.DIALECT_FLAG, found)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
