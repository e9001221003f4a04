"""The caps bound time and memory: the worst files under 10 MB we could build for each cap,
read in one child process that reports each file's time and the process's peak memory.

``read_checkpoint`` on a file under 10 MB must answer (read it or refuse it) in under 5 s of
CPU and 1 GB, whatever the file holds. CPU time, because the machine running the suite may be
loaded (the wall time is printed beside it, ``-s``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from securitynet.loader import _opscan, _picklecheck, _stcheck, _zipcheck
from tests.loader.safe_craft import (
    EMPTY_DICT,
    MARK,
    NEWFALSE,
    PROTO2,
    STOP,
    TUPLE,
    checkpoint_records,
    floats,
    glob,
    integer,
    ordered_dict,
    storage,
    text,
    torch_members,
    tup,
    write_zip,
)

REPO = Path(__file__).resolve().parents[2]

_CHILD = """
import json, resource, sys, time
from securitynet.errors import UnsafeCheckpointError
from securitynet.loader.safe import read_checkpoint
def peak_rss_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of a
    # big test process would report its parent's size
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
out = {}
for path in sys.argv[1:]:
    start, cpu = time.perf_counter(), time.process_time()
    try:
        outcome = f"read {len(read_checkpoint(path))} tensors"
    except UnsafeCheckpointError as exc:
        outcome = exc.fields["reason"]
    out[path] = {"seconds": time.perf_counter() - start, "outcome": outcome,
                 "cpu_seconds": time.process_time() - cpu,
                 "peak_rss_mb": peak_rss_mb()}
print(json.dumps(out))
"""


def _pickle_zip(pkl: bytes) -> bytes:
    return write_zip(torch_members(checkpoint_records(pkl, {})))


def worst_files(tmp_path: Path) -> dict[str, Path]:
    limit = _zipcheck.MAX_DATA_PKL
    files: dict[str, bytes] = {}
    # The slowest pickle to scan: one-byte opcodes that each make a node. (Deflated, the same
    # bytes are refused at once: they compress past the ratio cap.)
    body = b")0" * ((limit - 4) // 2)
    files["data.pkl at its cap, slowest opcodes"] = _pickle_zip(PROTO2 + body + b"N" + STOP)
    # Just past the cap: refused before it is read.
    files["data.pkl one byte past its cap"] = _pickle_zip(
        PROTO2 + b")0" * ((limit - 3) // 2) + b"NN" + STOP
    )
    # As many distinct tensors as allowed, all on one storage (the slowest file to accept).
    fn = glob("torch._utils", "_rebuild_tensor_v2") + b"q\x00"
    args = MARK + storage("0", 4) + integer(0) + tup([1]) + tup([1]) + NEWFALSE + ordered_dict()
    entries = [text("t0") + fn + args + TUPLE + b"q\x01R"]
    entries += [text(f"t{i}") + b"h\x00h\x01R" for i in range(1, _picklecheck.MAX_TENSORS)]
    pkl = PROTO2 + EMPTY_DICT + MARK + b"".join(entries) + b"u" + STOP
    files["the most tensors allowed, in a zip"] = write_zip(
        torch_members(checkpoint_records(pkl, {"0": floats(1, 2, 3, 4)}))
    )
    # A deep-but-allowed nest of lists beside one tensor (the scan's graph at its depth cap).
    deep = b"]" * _opscan.MAX_DEPTH + b"a" * (_opscan.MAX_DEPTH - 1)
    files["nesting at the depth cap"] = write_zip(
        torch_members(checkpoint_records(PROTO2 + deep + STOP, {}))
    )
    # safetensors: the most zero-size tensors the header cap and the tensor cap allow.
    header = {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
        for i in range(_stcheck.MAX_TENSORS)
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    assert len(raw) < _stcheck.MAX_HEADER
    files["the most safetensors tensors allowed"] = struct.pack("<Q", len(raw)) + raw
    header["one-more"] = header["t0"]
    raw = json.dumps(header, separators=(",", ":")).encode()
    files["one safetensors tensor past the cap"] = struct.pack("<Q", len(raw)) + raw
    paths = {}
    for i, (name, blob) in enumerate(files.items()):
        assert len(blob) < 10 * 2**20, name
        path = tmp_path / f"{i}.{'safetensors' if 'safetensors' in name else 'pt'}"
        path.write_bytes(blob)
        paths[name] = path
    return paths


def test_worst_files_answer_in_time_and_memory(tmp_path: Path) -> None:
    paths = worst_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, paths.values())],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    by_name = {name: measured[str(path)] for name, path in paths.items()}
    for name, figures in by_name.items():
        print(
            f"{name:48} {figures['outcome']:26} {figures['cpu_seconds']:5.2f} s CPU "
            f"{figures['seconds']:5.2f} s wall"
        )
    print(
        f"peak RSS of the child (torch included): {max(f['peak_rss_mb'] for f in by_name.values())} MB"
    )
    assert by_name["data.pkl one byte past its cap"]["outcome"] == "zip-record-too-large"
    assert by_name["the most tensors allowed, in a zip"]["outcome"] == (
        f"read {_picklecheck.MAX_TENSORS} tensors"
    )
    assert by_name["the most safetensors tensors allowed"]["outcome"] == (
        f"read {_stcheck.MAX_TENSORS} tensors"
    )
    assert by_name["one safetensors tensor past the cap"]["outcome"] == "safetensors-header-invalid"
    assert by_name["nesting at the depth cap"]["outcome"] == "not-a-mapping"
    # CPU time: on a shared, loaded machine the wall clock measures the neighbours.
    assert all(f["cpu_seconds"] < 5.0 for f in by_name.values()), by_name
    assert max(f["peak_rss_mb"] for f in by_name.values()) < 1024, by_name


def test_readme_states_the_caps() -> None:
    from securitynet.loader.safe import CAPS

    readme = (REPO / "README.md").read_text()
    assert CAPS["data_pkl_bytes"] == CAPS["legacy_pickle_bytes"] == 2 * 2**20
    assert "`data.pkl` and legacy pickles 2 MiB" in readme
    assert f"nesting {CAPS['pickle_depth']} levels" in readme
    assert f"{CAPS['tensors']:,} tensors" in readme
    assert f"{CAPS['tensor_dims']}\ndimensions" in readme or f"{CAPS['tensor_dims']} dimensions" in readme
    assert f"{CAPS['zip_members']:,} zip members" in readme
    assert f"deflate ratio {CAPS['deflate_ratio']}:1" in readme
    assert CAPS["safetensors_header_bytes"] == 8 * 2**20 and "safetensors header 8 MiB" in readme
