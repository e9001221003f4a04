"""``securitynet scan``: a verdict per file, exit 1 if any is refused, table or JSON; each file
read in an isolated worker, so a file that crashes, hangs or swells costs only its own verdict."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import zipfile
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


PROVENANCE = "# Provenance\n\nDownloaded from https://example.org/weights on 2026-01-01.\n"


def _torch_zip(path: Path, obj: object, *, extra_pickle: bytes | None = None) -> Path:
    """``torch.save(obj)``, with ``extra_pickle`` (opcodes building one value) stored under
    the key ``'x'`` of the top-level dict in ``data.pkl``; every record kept stored."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info)
            if extra_pickle is not None and info.filename.endswith("/data.pkl"):
                assert data.endswith(b"s.")  # a one-item dict: ... SETITEM STOP
                data = data[:-1] + b"X\x01\x00\x00\x00x" + extra_pickle + b"s."
            out.writestr(info.filename, data)
    return path


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    """A benign checkpoint among files built to crash, exhaust and stall the reader."""
    root = tmp_path / "downloads"
    root.mkdir()
    torch.save({"w": torch.ones(2, 3)}, root / "a_good.pt")
    # ~1 MB of nested 1-tuples: a million levels for a recursive C unpickler to descend
    n = 1_000_000
    _torch_zip(root / "b_nested.pt", {"w": torch.ones(2)}, extra_pickle=b")" + b"\x85" * n)
    # a genuine 48 MiB tensor: more than the 32 MiB the scan below allows per file
    torch.save({"w": torch.zeros(12 * 1024 * 1024)}, root / "c_hungry.pt")
    # a genuine state dict of 20,000 tiny tensors: about 2 s of CPU for the reader
    torch.save({f"t{i}": torch.zeros(1) for i in range(20_000)}, root / "d_slow.pt")
    (root / "PROVENANCE.md").write_text(PROVENANCE)
    return root


def test_every_file_gets_its_own_verdict_whatever_the_others_do(
    runner: CliRunner, hostile_folder: Path
) -> None:
    started = time.monotonic()
    result = runner.invoke(
        app,
        [
            "scan",
            "-f",
            "json",
            "--time-limit",
            "1",
            "--memory-limit",
            "32",
            "--workers",
            "2",
            str(hostile_folder),
        ],
    )
    assert time.monotonic() - started < 120
    assert result.exit_code == 1, result.output
    verdicts = {Path(v["path"]).name: v for v in json.loads(result.stdout)}
    assert sorted(verdicts) == [
        "PROVENANCE.md",
        "a_good.pt",
        "b_nested.pt",
        "c_hungry.pt",
        "d_slow.pt",
    ]
    assert verdicts["a_good.pt"]["verdict"] == "safe" and verdicts["a_good.pt"]["parameters"] == 6
    assert verdicts["PROVENANCE.md"]["verdict"] == "not a checkpoint"
    assert verdicts["PROVENANCE.md"]["reason"] == "not-a-checkpoint"
    assert verdicts["b_nested.pt"]["verdict"] == "refused"
    assert verdicts["c_hungry.pt"]["verdict"] == "refused"
    # RLIMIT_DATA fails the allocation: the worker is stopped, or the reader says so itself
    assert verdicts["c_hungry.pt"]["reason"] in ("memory-limit", "resource-exhausted")
    assert verdicts["d_slow.pt"]["verdict"] == "refused"
    # 20,000 tensors outrun the 1 s or the 32 MiB, whichever comes first (the pool's own
    # time-limit path is tested on a sleeping task in test_isolate.py)
    assert verdicts["d_slow.pt"]["reason"] in (
        "time-limit",
        "memory-limit",
        "resource-exhausted",
    ), verdicts["d_slow.pt"]


def test_the_same_files_pass_without_the_tight_limits(
    runner: CliRunner, hostile_folder: Path
) -> None:
    # the limits, not some other check, refused the hungry and the slow file above
    for name in ("b_nested.pt", "PROVENANCE.md"):
        (hostile_folder / name).unlink()
    result = runner.invoke(app, ["scan", "-f", "json", str(hostile_folder)])
    verdicts = {Path(v["path"]).name: v["verdict"] for v in json.loads(result.stdout)}
    assert verdicts == {"a_good.pt": "safe", "c_hungry.pt": "safe", "d_slow.pt": "safe"}
    assert result.exit_code == 0


def test_not_a_checkpoint_is_reported_apart_and_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    torch.save({"w": torch.ones(3)}, tmp_path / "model.pt")
    (tmp_path / "PROVENANCE.md").write_text(PROVENANCE)
    (tmp_path / "notes.txt").write_text("config: resnet20, trained 200 epochs.\n")
    result = runner.invoke(app, ["scan", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(maxsplit=1) for line in result.stdout.splitlines())
    assert lines[str(tmp_path / "PROVENANCE.md")] == "not a checkpoint"
    assert lines[str(tmp_path / "notes.txt")] == "not a checkpoint"
    assert lines[str(tmp_path / "model.pt")].startswith("safe (pytorch-zip")
    assert "3 files: 1 safe, 0 refused, 2 not checkpoints" in result.stderr


@pytest.mark.parametrize(
    "body",
    [
        pickle.dumps({"a": 1}, protocol=0),  # protocol 0: text-like, still a pickle
        pickle.dumps({"a": 1}, protocol=4),
        b"\x80\x02" + b"N" * 100_000,  # a pickle cut short (no STOP): still refused
        b"\x80\x02\xff garbage",  # a PROTO opcode is pickle magic, whatever follows
        # protocol 0: a call, then garbage: pickle.load runs os.system before the garbage
        b"cos\nsystem\n(S'touch /tmp/x'\ntR\xff\xfe garbage",
    ],
)
def test_a_pickle_is_refused_not_dismissed(runner: CliRunner, tmp_path: Path, body: bytes) -> None:
    (tmp_path / "x.bin").write_bytes(body)
    result = runner.invoke(app, ["scan", "-f", "json", str(tmp_path / "x.bin")])
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["verdict"] == "refused"


def test_scan_paths_from_python_keeps_the_order_of_the_files(tmp_path: Path) -> None:
    from securitynet.loader.scan import scan_paths

    folder = tmp_path / "downloads"
    folder.mkdir()
    torch.save({"w": torch.ones(4)}, folder / "b.pt")
    (folder / "a_PROVENANCE.md").write_text(PROVENANCE)
    (folder / "c.bin").write_bytes(pickle.dumps({"a": 1}))
    verdicts = scan_paths([str(folder)], workers=1)
    assert [(Path(v.path).name, v.verdict) for v in verdicts] == [
        ("a_PROVENANCE.md", "not a checkpoint"),
        ("b.pt", "safe"),
        ("c.bin", "refused"),
    ]
    assert [v.refused for v in verdicts] == [False, False, True]
    assert verdicts[1].as_dict()["parameters"] == 4
