"""The everyday read commands start lean: on a SQLite catalogue at the current revision,
``list``, ``show``, ``sql`` and ``db current`` answer without importing torch, pandas,
Alembic, SQLAlchemy, pydantic or Typer (click, rich), and say exactly what the full (ORM)
path says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from securitynet.catalogue import lite, queries
from securitynet.catalogue.api import Catalogue
from securitynet.cli.render import TableFormat
from tests.catalogue import sample

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "torch",
    "pandas",
    "alembic",
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "timm",
    "numpy",
    "typer",
    "click",
    "rich",
)

PROBE = """
import json, sys
from securitynet.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


@pytest.fixture
def sample_file(sample_sqlite_file: Path, tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.db"
    shutil.copyfile(sample_sqlite_file, path)
    return path


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "--dataset", "cifar10", "--format", "json"], ["show", "timm:resnet50.a1_in1k"], ["sql", "select 1"], ["db", "current"]],
    ids=lambda a: " ".join(a[:2]),
)
def test_everyday_commands_import_nothing_heavy(sample_file: Path, tmp_path: Path, args: list[str]) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SECURITYNET_")},
        "SECURITYNET_DATABASE_URL": f"sqlite:///{sample_file}",
        "SECURITYNET_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(HEAVY=HEAVY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), run.stderr
    assert report["heavy"] == [], f"{' '.join(args)} imported {report['heavy']}"
    assert run.stdout.strip()


def test_sync_prints_its_table_without_pandas(sample_file: Path, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SECURITYNET_")},
        "SECURITYNET_DATABASE_URL": f"sqlite:///{sample_file}",
        "SECURITYNET_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),
    }
    args = ["sync", "--source", "imgclsmob", "--offline"]
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(HEAVY=("pandas", "alembic")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), run.stderr
    assert report["heavy"] == [], run.stderr
    assert "The catalogue holds" in run.stdout


def test_the_lean_path_knows_the_same_columns_and_sort_keys() -> None:
    assert lite.SUMMARY_COLUMNS == queries.SUMMARY_COLUMNS
    assert list(lite.SORT_COLUMNS) == list(queries.SORT_KEYS)
    for key, nullable in lite.SORT_COLUMNS.items():
        assert queries.SORT_KEYS[key].nullable == nullable, key


def test_the_lean_path_reads_the_revision_alembic_would() -> None:
    from securitynet.catalogue.engine import head_revision

    lite.head_revision.cache_clear()
    assert lite.head_revision() == head_revision()


def test_settings_and_the_lean_path_find_the_same_catalogue(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from securitynet.settings import get_settings

    assert lite.env_database_url() == (get_settings().resolved_database_url, True)
    monkeypatch.setenv("SECURITYNET_HOME", str(tmp_path / "h"))
    assert lite.env_database_url()[0] == get_settings().resolved_database_url
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", "sqlite:////somewhere/else.db")
    assert lite.env_database_url() == ("sqlite:////somewhere/else.db", False)
    monkeypatch.delenv("SECURITYNET_DATABASE_URL")
    settings = get_settings()
    assert lite.sql_limits() == (settings.sql_max_rows, settings.sql_timeout)


FILTERS = [
    {},
    {"include_removed": True},
    {"dataset": "cifar10"},
    {"dataset": "ImageNet-1k", "min_top1": 80.0},
    {"source": "huggingface"},
    {"family": "ResNet"},
    {"architecture": "resnet50"},
    {"licence": "APACHE-2.0"},
    {"min_params": 25_000_000, "max_params": 1_500_000_000},
    {"text": "VIT"},
    {"num_classes": 10},
    {"max_top1": 90.0},
]
SORTS = [("top1", True), ("params", False), ("id", False), ("dataset", True), ("family", False)]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "all")
def test_the_lean_listing_is_the_orm_listing(sample_file: Path, filters: dict[str, object]) -> None:
    url = f"sqlite:///{sample_file}"
    with Catalogue(url) as cat, lite.open_lite(url) as reader:
        assert reader is not None
        for sort, descending in SORTS:
            want = [
                r.model_dump() for r in cat.search(sort=sort, descending=descending, **filters)
            ]
            got = reader.search(filters, sort=sort, descending=descending)
            assert got == want, (filters, sort, descending)
        assert reader.count(filters) == cat.count(**filters)


@pytest.mark.parametrize("entry_id", [r.id for r in sample.RECORDS])
def test_the_lean_show_prints_what_the_orm_show_prints(
    sample_file: Path, entry_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from securitynet.cli.everyday import _print_entry

    url = f"sqlite:///{sample_file}"
    with Catalogue(url) as cat:
        _print_entry(cat.get(entry_id))
    want = capsys.readouterr().out
    with lite.open_lite(url) as reader:
        assert reader is not None
        view = reader.find(entry_id)
    assert view is not None
    _print_entry(view)
    assert capsys.readouterr().out == want


def test_a_catalogue_at_another_revision_takes_the_full_path(sample_file: Path) -> None:
    import sqlite3

    with sqlite3.connect(sample_file) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    with lite.open_lite(f"sqlite:///{sample_file}") as reader:
        assert reader is None


def test_table_format_still_parses() -> None:
    assert TableFormat("json") is TableFormat.JSON and str(TableFormat.CSV) == "csv"
