"""Each read-only SQL layer holds on its own, with every other layer switched off.

``sql._LAYERS`` switches layers; a test that leaves one layer on and shows the attack is
stopped fails when that layer is removed, whatever the others do. The first test shows the
attacks do work with everything off, so none of these can pass vacuously.
"""

from __future__ import annotations

import resource
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from securitynet.catalogue import sql
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.sqlite_readonly import (
    MAX_COLUMNS,
    MAX_LENGTH,
    MAX_LIKE_PATTERN,
    MAX_RESULT_BYTES,
    MAX_SQL_LENGTH,
    SqliteGuard,
    SqliteLayers,
    open_sqlite_readonly,
)
from securitynet.errors import (
    ConfigurationError,
    InvalidQueryError,
    QueryTimeoutError,
    ReadOnlyViolationError,
)
from tests.catalogue import sample

SetLayers = Callable[[sql.Layers], None]
PgCatalogue = tuple[Catalogue, str]

NO_SQLITE = SqliteLayers(
    uri_readonly=False,
    query_only=False,
    authorizer=False,
    limits=False,
    progress=False,
    child=False,
)
NOTHING = sql.Layers(keyword=False, sqlite=NO_SQLITE, pg_role_check=False, pg_read_only=False)
FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
#: One VM step: SQLite's progress handler is not called once while this runs (minutes).
ONE_LONG_STEP = "SELECT instr(zeroblob(2000000), cast(zeroblob(1000000) || x'01' AS blob))"


def only(**on: bool) -> sql.Layers:
    """Every layer off except those named (SQLite layers by their SqliteLayers names)."""
    sqlite_on = {k: v for k, v in on.items() if k in SqliteLayers.__dataclass_fields__}
    other_on = {k: v for k, v in on.items() if k not in sqlite_on}
    return replace(NOTHING, sqlite=replace(NO_SQLITE, **sqlite_on), **other_on)


@pytest.fixture
def sqlite_cat(sample_sqlite_file: Path, tmp_path: Path) -> Iterator[Catalogue]:
    path = tmp_path / "catalogue.db"
    shutil.copyfile(sample_sqlite_file, path)
    with Catalogue(f"sqlite:///{path}") as cat:
        yield cat


@pytest.fixture
def layers(monkeypatch: pytest.MonkeyPatch) -> SetLayers:
    def use(value: sql.Layers) -> None:
        monkeypatch.setattr(sql, "_LAYERS", value)

    return use


def _count(cat: Catalogue) -> int:
    return cat.count(include_removed=True)


# --- SQLite -----------------------------------------------------------------------------------


def test_with_every_layer_off_the_attacks_work(sqlite_cat: Catalogue, layers: SetLayers) -> None:
    layers(NOTHING)
    assert sqlite_cat.sql("SELECT length(zeroblob(20000000))").rows == ((20_000_000,),)
    # an UPDATE no trigger watches: a DELETE would also meet trusted_schema=OFF, which
    # refuses the text-search index's triggers (its virtual table) on this connection
    sqlite_cat.sql("UPDATE entry SET top1 = 0 WHERE id LIKE 'timm:%'")
    assert sqlite_cat.sql("SELECT count(*) FROM entry WHERE top1 = 0").rows == ((4,),)


@pytest.mark.parametrize("layer", ["keyword", "uri_readonly", "query_only", "authorizer"])
def test_each_write_layer_alone_refuses_a_write(
    sqlite_cat: Catalogue, layers: SetLayers, layer: str
) -> None:
    layers(only(**{layer: True}))
    # (not a DELETE: trusted_schema=OFF, always on, would refuse it first, for the
    # text-search index's triggers)
    with pytest.raises(ReadOnlyViolationError, match="refused"):
        sqlite_cat.sql("UPDATE entry SET top1 = 0")
    assert sqlite_cat.sql("SELECT count(*) FROM entry WHERE top1 = 0").rows == ((0,),)


@pytest.mark.parametrize("layer", ["uri_readonly", "query_only", "authorizer"])
def test_each_database_layer_alone_refuses_a_write_behind_a_with(
    sqlite_cat: Catalogue,
    layers: SetLayers,
    layer: str,
) -> None:
    layers(only(**{layer: True}))  # the keyword check lets WITH through
    with pytest.raises(ReadOnlyViolationError):
        sqlite_cat.sql("WITH x AS (SELECT 1) UPDATE entry SET top1 = 0")
    assert sqlite_cat.sql("SELECT count(*) FROM entry WHERE top1 = 0").rows == ((0,),)


def _connect(cat: Catalogue, layers: SqliteLayers) -> sqlite3.Connection:
    return open_sqlite_readonly(Path(cat.engine.url.database or ""), SqliteGuard(5), layers)


@pytest.mark.parametrize("authorizer", [True, False])
def test_the_authorizer_alone_denies_file_functions(
    sqlite_cat: Catalogue, tmp_path: Path, authorizer: bool
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    conn = _connect(sqlite_cat, replace(NO_SQLITE, authorizer=authorizer))
    try:
        # what the sqlite3 shell's fileio extension would add to a connection
        conn.create_function("readfile", 1, lambda p: Path(p).read_bytes())
        if authorizer:
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                conn.execute("SELECT readfile(?)", (str(secret),)).fetchall()
        else:
            assert conn.execute("SELECT readfile(?)", (str(secret),)).fetchone() == (b"s3cret",)
    finally:
        conn.close()


@pytest.mark.parametrize("layer", ["authorizer", "limits"])
def test_attach_is_refused_by_the_authorizer_and_by_the_limits_alone(
    sqlite_cat: Catalogue, tmp_path: Path, layer: str
) -> None:
    conn = _connect(sqlite_cat, replace(NO_SQLITE, **{layer: True}))
    try:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(f"ATTACH '{tmp_path / 'other.db'}' AS other")
    finally:
        conn.close()
    assert not (tmp_path / "other.db").exists()


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT length(zeroblob({MAX_LENGTH + 1}))",
        "SELECT 40 AS n, " + ", ".join(["zeroblob(250000000)"] * 40),
        "SELECT " + ", ".join(["1"] * (MAX_COLUMNS + 1)),
        f"SELECT 'a' LIKE '{'%' * (MAX_LIKE_PATTERN + 1)}'",
        "SELECT 1 " + " " * MAX_SQL_LENGTH,
    ],
    ids=["length", "forty-zeroblobs", "columns", "like-pattern", "sql-length"],
)
def test_the_limits_alone_refuse_oversized_values(
    sqlite_cat: Catalogue, layers: SetLayers, statement: str
) -> None:
    layers(only(limits=True))
    started = time.monotonic()
    with pytest.raises(InvalidQueryError):
        sqlite_cat.sql(statement)
    assert time.monotonic() - started < 5


def test_values_at_the_limit_are_fine(sqlite_cat: Catalogue) -> None:
    assert sqlite_cat.sql(f"SELECT length(zeroblob({MAX_LENGTH}))").rows == ((MAX_LENGTH,),)


@pytest.mark.parametrize("layer", ["progress", "child"])
def test_the_progress_handler_and_the_child_each_stop_a_runaway(
    sqlite_cat: Catalogue,
    layers: SetLayers,
    layer: str,
) -> None:
    layers(only(**{layer: True}))
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"time limit of 0\.5 s"):
        sqlite_cat.sql(FOREVER, timeout=0.5)
    assert time.monotonic() - started < 5


def test_one_long_vm_step_is_stopped_by_the_child_at_the_deadline(sqlite_cat: Catalogue) -> None:
    # every layer on: the progress handler is not called during this one step, so only the
    # child process, killed at the deadline, bounds it (it otherwise runs for minutes)
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        sqlite_cat.sql(ONE_LONG_STEP, timeout=1)
    assert time.monotonic() - started < 6


def test_the_child_alone_caps_memory(sqlite_cat: Catalogue, layers: SetLayers) -> None:
    layers(only(child=True))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(InvalidQueryError, match="MiB of memory"):
        sqlite_cat.sql("SELECT " + ", ".join(["zeroblob(250000000)"] * 40))
    assert time.monotonic() - started < 30
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # the 10 GB row never reached this process


def test_the_result_is_capped_in_bytes_as_well_as_rows(sqlite_cat: Catalogue) -> None:
    per_row = 10_000_000
    rows = sqlite_cat.sql(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20) "
        f"SELECT zeroblob({per_row}) FROM c"
    )
    assert rows.truncated and len(rows.rows) == MAX_RESULT_BYTES // per_row


def test_plain_queries_still_work_with_every_layer(sqlite_cat: Catalogue) -> None:
    result = sqlite_cat.sql("SELECT count(*) FROM entry")
    assert result.rows == ((len(sample.RECORDS),),) and not result.truncated


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_server: str) -> Iterator[tuple[Catalogue, str]]:
    """The sample catalogue on a fresh PostgreSQL database, and the README reader's URL."""
    from tests.catalogue.pgreader import create_reader
    from tests.conftest import _fresh_pg_database

    url = _fresh_pg_database(postgres_server)
    with Catalogue(url) as cat:
        sample.fill(cat)
        yield cat, create_reader(url)


def _slots(cat: Catalogue) -> list[str]:
    from sqlalchemy import text

    with cat.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT slot_name FROM pg_replication_slots"))]


def _drop_slot(cat: Catalogue, name: str) -> None:
    from sqlalchemy import text

    with cat.engine.connect() as conn:
        conn.execute(text("SELECT pg_drop_replication_slot(:n)"), {"n": name})
        conn.commit()


@pytest.mark.postgres
def test_pg_superuser_is_refused_before_anything_runs(pg: PgCatalogue, layers: SetLayers) -> None:
    cat, _ = pg
    layers(only(pg_role_check=True))
    with pytest.raises(ConfigurationError, match="superuser") as info:
        cat.sql("SELECT pg_create_physical_replication_slot('sn_layer_test')")
    assert "SECURITYNET_SQL_DATABASE_URL" in (info.value.hint or "")
    assert "sn_layer_test" not in _slots(cat)


@pytest.mark.postgres
def test_pg_without_the_role_check_a_superuser_creates_a_slot_that_outlives_the_rollback(
    pg: PgCatalogue,
    layers: SetLayers,
) -> None:
    cat, _ = pg
    layers(only(pg_read_only=True))  # a READ ONLY transaction does not stop it
    cat.sql("SELECT pg_create_physical_replication_slot('sn_layer_test')")
    try:
        assert "sn_layer_test" in _slots(cat)
    finally:
        _drop_slot(cat, "sn_layer_test")


@pytest.mark.postgres
def test_pg_read_only_transaction_alone_refuses_a_write(pg: PgCatalogue, layers: SetLayers) -> None:
    cat, _ = pg
    layers(only(pg_read_only=True))
    with pytest.raises(ReadOnlyViolationError):
        cat.sql("WITH d AS (DELETE FROM entry RETURNING id) SELECT count(*) FROM d")
    assert _count(cat) == len(sample.RECORDS)


@pytest.mark.postgres
def test_pg_reader_role_alone_is_refused_everything_but_reading(
    pg: PgCatalogue, layers: SetLayers
) -> None:
    cat, reader = pg
    layers(NOTHING)
    for statement in (
        "SELECT pg_read_file('postgresql.conf')",
        "SELECT pg_ls_dir('.')",
        "SELECT pg_reload_conf()",
        "SELECT pg_create_physical_replication_slot('sn_reader_slot')",
        "SELECT set_config('role', 'postgres', true), pg_read_file('postgresql.conf')",
        "WITH d AS (DELETE FROM entry RETURNING id) SELECT count(*) FROM d",
    ):
        with pytest.raises((InvalidQueryError, ReadOnlyViolationError)):
            sql.run_sql(cat.engine, statement, max_rows=10, timeout=10, reader_url=reader)
    assert "sn_reader_slot" not in _slots(cat)
    assert _count(cat) == len(sample.RECORDS)


@pytest.mark.postgres
def test_pg_readme_reader_role_reads_and_nothing_more(
    pg: PgCatalogue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cat, reader = pg
    with pytest.raises(ConfigurationError, match="superuser"):
        cat.sql("SELECT 1")  # the catalogue's own (superuser) URL
    monkeypatch.setenv("SECURITYNET_SQL_DATABASE_URL", reader)
    with Catalogue(cat.url) as as_reader:
        assert as_reader.sql("SELECT count(*) FROM entry").rows == ((len(sample.RECORDS),),)
        assert as_reader.sql("SELECT count(*) FROM v_entries_per_dataset").rows[0][0] > 0
        for function in (
            "pg_read_file('/etc/passwd')",
            "pg_ls_dir('.')",
            "pg_reload_conf()",
            "pg_create_physical_replication_slot('sn_readme_slot')",
        ):
            with pytest.raises(InvalidQueryError, match=r"permission denied|must be superuser"):
                as_reader.sql(f"SELECT {function}")
    assert "sn_readme_slot" not in _slots(cat)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("grant", "words"),
    [
        ("ALTER ROLE {r} REPLICATION", "has REPLICATION"),
        ("GRANT pg_read_server_files TO {r}", "pg_read_server_files"),
        ("GRANT pg_write_server_files TO {r}", "pg_write_server_files"),
        ("GRANT pg_execute_server_program TO {r}", "pg_execute_server_program"),
    ],
)
def test_pg_a_reader_url_with_any_forbidden_power_is_refused(
    pg: PgCatalogue,
    grant: str,
    words: str,
) -> None:
    from sqlalchemy import text

    from tests.catalogue.pgreader import create_reader

    cat, _ = pg
    role = f"sn_powers_{abs(hash(grant)) % 10_000}"
    reader = create_reader(cat.url, role=role)
    with cat.engine.connect() as conn:
        conn.execute(text(grant.format(r=role)))
        conn.commit()
    with pytest.raises(ConfigurationError, match=words):
        sql.run_sql(cat.engine, "SELECT 1", max_rows=1, timeout=5, reader_url=reader)


# --- what each refusal says (mutation-sample survivors) ---------------------------------------


def test_every_layer_is_on_by_default() -> None:
    assert all(getattr(SqliteLayers(), name) is True for name in SqliteLayers.__dataclass_fields__)
    assert sql.Layers() == sql._LAYERS and sql.Layers().sqlite == SqliteLayers()
    assert all(
        getattr(sql.Layers(), name) is True for name in ("keyword", "pg_role_check", "pg_read_only")
    )


@pytest.mark.parametrize("layer", ["uri_readonly", "query_only"])
def test_a_refusal_by_the_database_itself_says_writing(
    sqlite_cat: Catalogue, layers: SetLayers, layer: str
) -> None:
    layers(only(**{layer: True}))
    with pytest.raises(ReadOnlyViolationError, match="refused: writing is not allowed"):
        sqlite_cat.sql("UPDATE entry SET top1 = 0")


def test_an_oversized_value_is_named_as_such(sqlite_cat: Catalogue) -> None:
    with pytest.raises(InvalidQueryError, match="larger than read-only SQL allows"):
        sqlite_cat.sql(f"SELECT length(zeroblob({MAX_LENGTH + 1}))")


def test_two_statements_are_named_as_such(sqlite_cat: Catalogue) -> None:
    with pytest.raises(InvalidQueryError, match="only one statement may run at a time"):
        sqlite_cat.sql("SELECT 1; SELECT 2")


def test_an_sql_error_is_reported_as_one(sqlite_cat: Catalogue) -> None:
    with pytest.raises(InvalidQueryError, match=r"^SQL error: no such table: nowhere$"):
        sqlite_cat.sql("SELECT * FROM nowhere")


def test_a_catalogue_in_memory_or_missing_is_a_configuration_error(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from securitynet.catalogue.sqlite_readonly import sqlite_database_path

    with pytest.raises(ConfigurationError, match="in a database file, not in memory"):
        sqlite_database_path(create_engine("sqlite://"))
    with pytest.raises(ConfigurationError, match="no catalogue database at"):
        sql.run_sql(
            create_engine(f"sqlite:///{tmp_path / 'absent.db'}"),
            "SELECT 1",
            max_rows=1,
            timeout=1,
        )
