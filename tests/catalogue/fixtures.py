"""Sample-catalogue fixtures for every test directory (registered as a plugin by
tests/conftest.py, which also provides ``catalogue_url``: a SQLite file, then a fresh
PostgreSQL database).

``catalogue`` is the sample catalogue of :mod:`tests.catalogue.sample` at ``catalogue_url``.
On SQLite it is built once per session and copied for each test (a file copy is much
faster than migrating and filling); on PostgreSQL it is filled in the test's own database.
A test may change it freely.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from securitynet.catalogue.api import Catalogue
from securitynet.settings import get_settings
from tests.catalogue import sample
from tests.catalogue.pgreader import create_reader


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


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


@pytest.fixture
def catalogue(
    catalogue_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Catalogue]:
    """The sample catalogue, at ``catalogue_url`` (on PostgreSQL with the README's reader
    role for ``sql`` in ``SECURITYNET_SQL_DATABASE_URL``)."""
    if backend(catalogue_url) == "sqlite":
        database = make_url(catalogue_url).database
        assert database is not None
        shutil.copyfile(request.getfixturevalue("sample_sqlite_file"), database)
        with Catalogue(catalogue_url) as cat:
            yield cat
        return
    with Catalogue(catalogue_url) as cat:
        sample.fill(cat)
        monkeypatch.setenv("SECURITYNET_SQL_DATABASE_URL", create_reader(catalogue_url))
        cat.settings = get_settings()
        yield cat
