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
    assert cli("add", "github", str(clone)).code == 0
    shown = json.loads(cli("show", "github:someone/thing/models/net.pth", "--format", "json").stdout)
    assert shown["files"][0]["size"] == len(buf.getvalue())
    assert shown["load"] is None
