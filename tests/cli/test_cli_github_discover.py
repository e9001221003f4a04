"""``discover github``: repository and code search (built to GitHub's documented search
shapes, with the recorded repository as the item template) -> candidates with evidence,
stored for review, never entries."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from securitynet.catalogue.api import Catalogue
from tests.cli.conftest import Invoke
from tests.fakegithub import FakeGithub


def _repo_item(fake: FakeGithub, full_name: str, stars: int) -> dict:
    item = copy.deepcopy(fake.templates["repo"])
    item.update(full_name=full_name, name=full_name.split("/")[1], stargazers_count=stars,
                html_url=f"https://github.com/{full_name}")
    return item


@pytest.fixture
def fake(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGithub]:
    with FakeGithub(page_size=2) as server:
        server.load_recorded(shared_dir)
        for key, value in server.settings_env().items():
            monkeypatch.setenv(key, value)
        q = "cifar10 resnet pretrained"
        server.set_search("repositories", q, [
            _repo_item(server, "big/popular-no-weights", 900),
            _repo_item(server, "alice/cifar-nets", 40),
            _repo_item(server, "odd/name with space", 1),
        ], sort="stars", order="desc", per_page="100")
        server.set_search("code", f"{q} filename:hubconf.py", [
            {"name": "hubconf.py", "path": "hubconf.py", "repository": _repo_item(server, "carol/hub-models", 12)},
            {"name": "hubconf.py", "path": "hubconf.py", "repository": _repo_item(server, "alice/cifar-nets", 40)},
        ], per_page="100")
        server.add_repo("alice/cifar-nets", {}, releases={"v1": {"resnet20-4118986f.pt": b"w" * 10, "log.txt": b""}})
        readme = "# Nets\nFrom our paper (https://arxiv.org/abs/2101.00001).\n"
        server.set("/api/repos/alice/cifar-nets/readme",
                   {"type": "file", "encoding": "base64", "content": base64.b64encode(readme.encode()).decode()})
        yield server


def test_discover_ranks_candidates_by_evidence_and_stores_them(cli: Invoke, fake: FakeGithub) -> None:
    run = cli("discover", "github", "cifar10 resnet pretrained", "--format", "json")
    assert run.code == 0, run.stderr
    found = json.loads(run.stdout)
    assert [c["repo"] for c in found] == ["alice/cifar-nets", "carol/hub-models", "big/popular-no-weights"]
    best = found[0]
    assert best["files"] == ["v1/resnet20-4118986f.pt (10 bytes)"] and best["hubconf"] is True
    assert best["paper"] == "https://arxiv.org/abs/2101.00001" and best["licence"] == "mit"
    assert set(best["found_by"]) == {"repositories", "code:hubconf.py"}
    assert fake.count(prefix="/api/search/") == 3  # two pages of repositories, one of code
    stored = json.loads((Path(Catalogue().settings.home) / "discover/github.json").read_text())
    assert set(stored) == {c["repo"] for c in found}
    assert Catalogue().count(source="github") == 0  # candidates, not entries


def test_discover_limit_and_text_output(cli: Invoke, fake: FakeGithub) -> None:
    run = cli("discover", "github", "cifar10 resnet pretrained", "--limit", "1", "--no-evidence")
    assert run.code == 0, run.stderr
    assert "1 candidates" in run.stdout and "big/popular-no-weights" in run.stdout
