"""What a user sees when the catalogue is damaged, missing, empty, or a source is misspelt:
one line and a hint, and the file left exactly as it was."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from securitynet.cli.app import main
from tests.cli.conftest import Run


def _run(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Run:
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", url)
    monkeypatch.delenv("SECURITYNET_DEBUG", raising=False)
    with CliRunner().isolation() as (out, err, _mixed):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def _one_line_error(run: Run, *fragments: str) -> None:
    assert run.code == 1, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), run.stderr
    for fragment in fragments:
        assert fragment in run.stderr


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


COMMANDS = [["list"], ["show", "timm:resnet50.a1_in1k"], ["stats"], ["sql", "select 1"], ["db", "current"], ["sync", "--source", "torchvision", "--limit", "1"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0] + ("-" + a[1] if len(a) > 1 and a[0] == "db" else ""))
def test_a_truncated_catalogue_is_one_line_and_left_untouched(
    sample_sqlite_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    path = tmp_path / "catalogue.db"
    path.write_bytes(sample_sqlite_file.read_bytes()[: sample_sqlite_file.stat().st_size // 2])
    before = _digest(path)
    run = _run(f"sqlite:///{path}", monkeypatch, *args)
    _one_line_error(run, "truncated", "left as it is", "securitynet sync")
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalogue.db"], "no -wal / -shm beside it"


@pytest.mark.parametrize("args", COMMANDS[:4], ids=lambda a: a[0])
def test_a_garbage_catalogue_is_one_line_and_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    path = tmp_path / "catalogue.db"
    path.write_bytes(b"this is no database, just some notes\n" * 100)
    before = _digest(path)
    run = _run(f"sqlite:///{path}", monkeypatch, *args)
    _one_line_error(run, "not a SQLite database", "left as it is")
    assert _digest(path) == before


def test_damage_past_the_header_is_one_line_too(
    sample_sqlite_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalogue.db"
    data = bytearray(sample_sqlite_file.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)  # the header is whole, the pages are not
    path.write_bytes(bytes(data))
    run = _run(f"sqlite:///{path}", monkeypatch, "list")
    _one_line_error(run, "damaged")


@pytest.mark.parametrize("args", [["list"], ["sync", "--source", "torchvision"], ["db", "current"]], ids=lambda a: a[0])
def test_a_url_into_a_missing_folder_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    folder = tmp_path / "nonexistent" / "dir"
    run = _run(f"sqlite:///{folder / 'x.db'}", monkeypatch, *args)
    _one_line_error(run, "does not exist", "nothing was created")
    assert not (tmp_path / "nonexistent").exists()


def test_the_default_location_is_made_on_first_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    monkeypatch.setenv("SECURITYNET_HOME", str(home))
    monkeypatch.delenv("SECURITYNET_DATABASE_URL", raising=False)
    with CliRunner().isolation() as (_out, err, _mixed):
        main(["list"])
        assert "is empty" in err.getvalue().decode()


def test_an_empty_catalogue_says_so_and_how_to_fill_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    listed = _run(url, monkeypatch, "list")
    assert listed.code == 0 and "is empty" in listed.stderr and "securitynet sync" in listed.stderr
    stats = _run(url, monkeypatch, "stats")
    assert stats.code == 0, stats.stderr
    assert "is empty" in stats.stderr
    stats_json = _run(url, monkeypatch, "stats", "--format", "json")
    assert stats_json.code == 0 and stats_json.stdout.strip() == "[]"
    shown = _run(url, monkeypatch, "show", "timm:resnet50.a1_in1k")
    _one_line_error(shown, "no entry", "is empty", "securitynet sync")


def test_sync_of_an_unknown_source_offers_only_real_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from securitynet.scrapers import REGISTRY

    for name in ("nonsense", "gitlab"):
        run = _run(f"sqlite:///{tmp_path / 'c.db'}", monkeypatch, "sync", "--source", name)
        _one_line_error(run, "no scraper")
        hint = run.stderr.strip().splitlines()[1]
        offered = hint.split(":", 2)[-1].strip(" .").split(", ")
        assert set(offered) == set(REGISTRY)


def test_shutil_copy_of_the_sample_is_a_whole_database(sample_sqlite_file: Path, tmp_path: Path) -> None:
    from securitynet.catalogue.dbfile import check_sqlite_file

    copy = tmp_path / "c.db"
    shutil.copyfile(sample_sqlite_file, copy)
    check_sqlite_file(copy)  # a whole file passes the header check


def test_sync_full_rereads_what_a_plain_sync_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    for args in (["sync", "--source", "imgclsmob", "--offline"],) * 2 + (
        ["sync", "--source", "imgclsmob", "--offline", "--full"],
    ):
        run = _run(url, monkeypatch, *args)
        assert run.code == 0, run.stderr
    with sqlite3.connect(db) as conn:
        options = [
            row[0]
            for row in conn.execute(
                "SELECT options FROM sync_run WHERE source = 'imgclsmob' ORDER BY id"
            )
        ]
    assert ["skipped" in (o or "") for o in options] == [False, True, False]
