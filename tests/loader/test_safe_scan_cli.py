"""``securitynet scan``: a verdict per file, exit 1 if any is refused, table or JSON."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from securitynet.cli.app import _register_commands, app

GITHUB_MNIST = "checkpoints/github-mnist"


class ReduceToSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def runner() -> CliRunner:
    _register_commands()
    return CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with one good checkpoint (nested) and one raw pickle named .bin."""
    marker = tmp_path / "PWNED"
    root = tmp_path / "checkpoints"
    (root / "nested").mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.ones(2, 3)}, "epoch": 4}, root / "nested" / "good.pt")
    (root / "evil.bin").write_bytes(pickle.dumps(ReduceToSystem(marker), protocol=2))
    return root, marker


def test_scan_table_gives_a_verdict_per_file_and_exit_1(
    runner: CliRunner, folder: tuple[Path, Path]
) -> None:
    root, marker = folder
    result = runner.invoke(app, ["scan", str(root)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 2
    evil = next(line for line in lines if "evil.bin" in line)
    good = next(line for line in lines if "good.pt" in line)
    assert "refused: format-pickle" in evil
    assert "safe (pytorch-zip, 1 tensors, 6 values, under 'state_dict')" in good
    assert not marker.exists()


def test_scan_json(runner: CliRunner, folder: tuple[Path, Path]) -> None:
    root, marker = folder
    result = runner.invoke(
        app, ["scan", "--format", "json", str(root / "nested" / "good.pt"), str(root / "evil.bin")]
    )
    assert result.exit_code == 1
    verdicts = json.loads(result.stdout)
    assert [v["verdict"] for v in verdicts] == ["safe", "refused"]
    assert verdicts[0]["wrapper_key"] == "state_dict" and verdicts[0]["tensors"] == 1
    assert verdicts[1]["reason"] == "format-pickle" and verdicts[1]["format"] == "pickle"
    assert not marker.exists()


def test_scan_real_checkpoints_all_safe(
    runner: CliRunner, shared_dir: Path, tmp_path: Path
) -> None:
    files = sorted((shared_dir / GITHUB_MNIST).glob("*.pt"))
    result = runner.invoke(app, ["scan", "--format", "json", *map(str, files)])
    assert result.exit_code == 0, result.output
    verdicts = json.loads(result.stdout)
    assert len(verdicts) == 6 and all(v["verdict"] == "safe" for v in verdicts)


def test_scan_missing_file_is_refused_not_a_crash(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["scan", str(tmp_path / "absent.pt")])
    assert result.exit_code == 1
    assert "refused: unreadable" in result.stdout


def test_scan_legacy_needs_the_flag(runner: CliRunner, tmp_path: Path) -> None:
    torch.save({"w": torch.ones(3)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert runner.invoke(app, ["scan", str(tmp_path / "old.pth")]).exit_code == 1
    assert runner.invoke(app, ["scan", "--allow-legacy", str(tmp_path / "old.pth")]).exit_code == 0


@pytest.mark.skipif(shutil.which("true") is None, reason="needs a POSIX shell environment")
def test_scan_as_a_process(folder: tuple[Path, Path]) -> None:
    root, marker = folder
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "securitynet", "scan", "--format", "json", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert {v["verdict"] for v in json.loads(proc.stdout)} == {"safe", "refused"}
    assert not marker.exists()
