"""``securitynet serve``: the CLI's wiring, and the app answering over a real loopback socket."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn", reason="the web view needs the 'web' extra")
pytest.importorskip("starlette", reason="the web view needs the 'web' extra")

from starlette.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from securitynet.catalogue.api import Catalogue  # noqa: E402
from securitynet.cli.app import main  # noqa: E402
from securitynet.web.app import CONTENT_SECURITY_POLICY, create_app  # noqa: E402


@pytest.fixture
def sample_url(sample_sqlite_file: Path, tmp_path: Path) -> str:
    path = tmp_path / "catalogue.db"
    shutil.copyfile(sample_sqlite_file, path)
    return f"sqlite:///{path}"


def _serve(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run ``securitynet serve ARGS`` with uvicorn.run replaced by a recorder."""
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        seen.update(kwargs, app=app)
        with TestClient(app) as client:  # while the catalogue is still open
            seen["home"] = client.get("/index.json").json()

    monkeypatch.setattr(uvicorn, "run", fake_run)
    with CliRunner().isolation():
        try:
            main(["serve", *args])
        except SystemExit as exc:
            seen["code"] = exc.code
    return seen


def test_serve_binds_loopback_by_default(sample_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", sample_url)
    seen = _serve([], monkeypatch)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765
    with Catalogue(sample_url) as cat:
        assert seen["home"]["entries"] == cat.count()


def test_serve_takes_host_port_and_database(
    sample_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", f"sqlite:///{tmp_path}/other.db")
    seen = _serve(["--host", "0.0.0.0", "--port", "8080", "--database-url", sample_url], monkeypatch)
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 8080)
    assert seen["home"]["entries"] > 0  # the named catalogue, not the environment's
    assert not (tmp_path / "other.db").exists()


def test_the_app_answers_over_a_loopback_socket(sample_url: str) -> None:
    with Catalogue(sample_url, upgrade=False) as cat:
        server = uvicorn.Server(
            uvicorn.Config(create_app(cat), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.started
            port = server.servers[0].sockets[0].getsockname()[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/browse?dataset=CIFAR-10", timeout=10) as r:
                body = r.read().decode()
                assert r.status == 200
                assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert f"{cat.count(dataset='CIFAR-10')} entries" in body
        finally:
            server.should_exit = True
            thread.join(timeout=20)


def test_the_readme_commands_and_urls(sample_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ``securitynet serve`` lines (its PostgreSQL URL replaced by the sample
    catalogue) and its example browse URL, as written there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A web view: `securitynet serve`", 1)[1].split("\n## ", 1)[0]
    lines = [
        line.split("#", 1)[0].split()
        for line in section.splitlines()
        if line.startswith("securitynet serve")
    ]
    assert len(lines) == 2
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", sample_url)
    for words in lines:
        args = [sample_url if w == "postgresql://..." else w for w in words[2:]]
        seen = _serve(args, monkeypatch)
        assert seen["home"]["entries"] > 0 and seen.get("code") in (None, 0)
    url = section.split("(`/browse?", 1)[1].split("`", 1)[0]
    with Catalogue(sample_url, upgrade=False) as cat, TestClient(create_app(cat)) as client:
        data = client.get(f"/browse.json?{url}").json()
        assert data["total"] == cat.count(dataset="CIFAR-10", min_params=1_000_000)
