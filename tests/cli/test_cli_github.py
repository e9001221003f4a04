"""``securitynet add github PATH``: a local clone catalogued from the command line, then
loaded by id with the network off."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke
from tests.githubclones import SHARED_IDS, clone_shared_checkpoints, git, make_clone

OVERFIT = "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn_overfitted.pt"


def test_add_github_clone_then_load_offline(cli: Invoke, shared_dir: Path, tmp_path: Path) -> None:
    clones = clone_shared_checkpoints(shared_dir, tmp_path)
    clone = clones["john-samurai/AttackDefenseMNIST-trainedModel"]
    run = cli("add", "github", str(clone))
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("github: 4 seen, 4 added")
    again = cli("add", "github", str(clone), "--format", "json")
    assert json.loads(again.stdout)["unchanged"] == 4
    listed = cli("list", "--source", "github", "--format", "json")
    assert {row["id"] for row in json.loads(listed.stdout)} >= {SHARED_IDS[OVERFIT]}
    loaded = cli("load", SHARED_IDS[OVERFIT], "--offline", "--format", "json")
    assert loaded.code == 0, loaded.stderr
    info = json.loads(loaded.stdout)
    assert info["builder"] == "state-dict" and info["output"] == "log_softmax"
    assert info["files"][0]["revision"] == git(clone, "rev-parse", "HEAD")


def test_add_github_of_a_folder_that_is_not_a_clone_says_so(cli: Invoke, tmp_path: Path) -> None:
    run = cli("add", "github", str(tmp_path))
    assert run.code == 1
    assert "git rev-parse failed" in run.stderr and "hint:" in run.stderr


def test_an_unresolved_checkpoint_is_catalogued_with_its_file(cli: Invoke, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf)
    clone = make_clone(tmp_path / "r", "someone/thing", {"models/net.pth": buf.getvalue(), "notes.txt": b"x"})
    assert cli("add", "github", str(clone), "--no-resolve").code == 0
    shown = json.loads(cli("show", "github:someone/thing/models/net.pth", "--format", "json").stdout)
    assert shown["files"][0]["size"] == len(buf.getvalue())
    assert shown["load"] is None
    assert shown["raw"]["architecture"]["status"] == "unresolved"


def test_add_github_owner_repo_reads_the_api(cli: Invoke, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakegithub import FakeGithub

    with FakeGithub() as fake:
        fake.load_recorded(shared_dir)
        for key, value in fake.settings_env().items():
            monkeypatch.setenv(key, value)
        fake.add_repo("carol/nets", {"w/net.pth": b"\x80" * 2000})
        run = cli("add", "github", "carol/nets", "--no-resolve")
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("github: 1 seen, 1 added")
    shown = json.loads(cli("show", "github:carol/nets/w/net.pth", "--format", "json").stdout)
    assert shown["licence"] == "MIT" and shown["files"][0]["size"] == 2000


def test_add_github_offline_is_one_line(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    run = cli("add", "github", "carol/nets")
    assert run.code == 1
    assert run.stderr.splitlines()[0] == "error: GitHub cannot be used: offline (SECURITYNET_OFFLINE)"
    assert "Traceback" not in run.stderr


def test_sync_source_github_then_load_over_the_network(cli: Invoke, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped manifest, against a loopback GitHub that has one of its repositories
    (the others answer 404 and are skipped): the file is catalogued from the trees API, the
    curated declaration applies (same sha256), and `load` downloads and verifies it."""
    from tests.fakegithub import FakeGithub

    name = "Zhuzhenghao--mnist-data--mnist_cnn.pt"
    with FakeGithub() as fake:
        fake.load_recorded(shared_dir)
        for key, value in fake.settings_env().items():
            monkeypatch.setenv(key, value)
        fake.add_repo("Zhuzhenghao/mnist-data", {"mnist_cnn.pt": (shared_dir / "checkpoints/github-mnist" / name).read_bytes()},
                      licence=None)
        run = cli("sync", "--source", "github")
        assert run.code == 0, run.stderr
        assert run.stdout.startswith("github: 1 seen, 1 added")
        loaded = cli("load", SHARED_IDS[name], "--format", "json")
        assert loaded.code == 0, loaded.stderr
        info = json.loads(loaded.stdout)
        assert info["output"] == "log_softmax" and info["classes"] == 10
        assert fake.count(prefix="/raw/Zhuzhenghao/mnist-data/") == 1
