"""Catalogue fixtures, for every test directory (registered as a plugin by tests/conftest.py).

``catalogue_url`` is the one place a test gets its database from: a
SQLite file always, and a fresh PostgreSQL database per test as well when
``SECURITYNET_TEST_POSTGRES_URL`` names a server (any database on it; tests create and drop
their own). A PostgreSQL fixture that starts its own server can set that variable.

``catalogue`` is the sample catalogue of :mod:`tests.catalogue.sample`, built once per
session and copied for each test (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE``
on PostgreSQL), so a test may change it freely.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from securitynet.catalogue.api import Catalogue
from tests.catalogue import sample

_PG_SERVER = os.environ.get("SECURITYNET_TEST_POSTGRES_URL")
_BACKENDS = ["sqlite"] + ([pytest.param("postgresql", marks=pytest.mark.postgres)] if _PG_SERVER else [])


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


def _pg_admin(url: str | URL, statement: str) -> None:
    import psycopg

    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(statement)


def _pg_new_database(template: str | None = None) -> URL:
    assert _PG_SERVER is not None
    name = f"securitynet_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(_PG_SERVER, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return make_url(_PG_SERVER).set(drivername="postgresql", database=name)


def _pg_drop(url: str | URL) -> None:
    _pg_admin(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture(params=_BACKENDS)
def catalogue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalogue.db'}"
        return
    url = _pg_new_database()
    yield url.render_as_string(hide_password=False)
    _pg_drop(url)


@pytest.fixture
def empty_catalogue(catalogue_url: str) -> Iterator[Catalogue]:
    with Catalogue(catalogue_url) as cat:
        yield cat


@pytest.fixture(scope="session")
def sample_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "catalogue.db"
    with Catalogue(f"sqlite:///{path}") as cat:
        sample.fill(cat)
    return path  # closing the last connection folded the WAL into this one file


@pytest.fixture(scope="session")
def sample_postgres_database() -> Iterator[str]:
    url = _pg_new_database()
    with Catalogue(url.render_as_string(hide_password=False)) as cat:
        sample.fill(cat)
    yield str(url.database)
    _pg_drop(url)


@pytest.fixture
def catalogue(catalogue_url: str, request: pytest.FixtureRequest) -> Iterator[Catalogue]:
    """The sample catalogue, at ``catalogue_url``."""
    if backend(catalogue_url) == "sqlite":
        database = make_url(catalogue_url).database
        assert database is not None
        shutil.copyfile(request.getfixturevalue("sample_sqlite_file"), database)
    else:
        template = request.getfixturevalue("sample_postgres_database")
        _pg_drop(catalogue_url)
        _pg_admin(catalogue_url, f'CREATE DATABASE "{make_url(catalogue_url).database}" TEMPLATE "{template}"')
    with Catalogue(catalogue_url) as cat:
        yield cat
