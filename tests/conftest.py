"""Fixtures shared by the whole suite.

``../shared`` (real data nobody on this project wrote) is used by path; tests that need it
skip with a clear reason when it is absent, so a user's checkout still passes.

``catalogue_url`` runs a test once on SQLite and once on a real PostgreSQL server started
for the session (see ``tests/pgserver.py``); the PostgreSQL run is marked ``postgres``.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgserver import find_pg_bin, throwaway_server

#: The sample catalogue fixtures (catalogue, empty_catalogue), for every test directory.
pytest_plugins = ("tests.catalogue.fixtures",)

ROOT = Path(__file__).resolve().parent.parent
#: ``../shared``, or the folder named by SECURITYNET_TEST_SHARED (a worktree elsewhere).
SHARED = Path(os.environ.get("SECURITYNET_TEST_SHARED") or ROOT.parent / "shared")

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); real-data tests skipped")
    return SHARED


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test: small nets and batches gain nothing from more, and
    on a shared, loaded machine two threads cost several times more (ask for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own SECURITYNET_HOME: no test touches the user's catalogue or cache."""
    home = tmp_path_factory.mktemp("securitynet-home")
    monkeypatch.setenv("SECURITYNET_HOME", str(home))
    for var in (
        "SECURITYNET_DATABASE_URL",
        "SECURITYNET_CACHE_DIR",
        "SECURITYNET_OFFLINE",
        "SECURITYNET_TIMM_RESULTS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield home


@pytest.fixture(autouse=True)
def _sigpipe_ignored() -> Iterator[None]:
    """SIGPIPE ignored around every test (Python's own default: a write to a closed socket
    raises BrokenPipeError). ``cli.main()`` sets the Unix default while it runs (a quiet end
    for ``| head``); if any thread wrote to a socket whose peer hung up meanwhile, the whole
    pytest process would die with exit 141, no summary, servers left running. The one place
    this is handled, for every test directory."""
    if not hasattr(signal, "SIGPIPE"):
        yield
        return
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGPIPE, previous)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for this session (started here unless given)."""
    given = os.environ.get("SECURITYNET_TEST_PG_URL")
    if given:
        yield given
        return
    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL, but no PostgreSQL binaries were found")
        pytest.skip(
            "PostgreSQL binaries not found (set SECURITYNET_TEST_PG_BIN or SECURITYNET_TEST_PG_URL)"
        )
    with throwaway_server() as url:
        yield url


def _fresh_pg_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"securitynet_test_{os.getpid()}_{next(_db_counter)}"
    admin = create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalogue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalogue database URL: SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalogue.db'}"
    server: str = request.getfixturevalue("postgres_server")
    return _fresh_pg_database(server)
