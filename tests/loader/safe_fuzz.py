"""Structural fuzzing of the safe reader; run in a child process by ``test_safe_fuzz.py``.

    python -m tests.loader.safe_fuzz --cases 3000 --seed 1 --workdir /tmp/x --report r.json

The corpus is benign files built here (zip checkpoints with views, shared storages, several
dtypes and wrappers, a deflated re-zip, safetensors). Each case mutates one of them
structurally, mostly keeping CRCs and the container valid so the mutant gets past the
sniffer and the zip checks into the pickle and tensor checks: bit flips inside data.pkl,
opcode insertion, deletion and replacement, small-record edits, member splices (dropped,
duplicated, swapped, reordered), bit flips in the raw zip records, truncation, and
safetensors header edits. Every outcome must be a typed refusal or a dict of plain tensors
within the caps; every accepted zip is compared with torch's own zip reader
(``torch._C.PyTorchFileReader``): the same records holding the same bytes. The last case
started is written to ``<workdir>/current`` so a crash can be traced to its seed.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import struct
import time
import zipfile
from collections import Counter
from pathlib import Path

import torch

from securitynet.errors import LoaderError, UnsafeCheckpointError
from securitynet.loader import _zipcheck
from securitynet.loader.safe import read_checkpoint
from tests.loader.safe_craft import Member, write_zip

#: Opcodes (with a plausible argument) inserted into data.pkl.
_OPCODES = [
    b"(", b".", b"0", b"1", b"2", b"N", b"}", b"]", b")", b"a", b"b", b"e", b"l", b"t", b"d",
    b"s", b"u", b"R", b"Q", b"\x85", b"\x86", b"\x87", b"\x88", b"\x89", b"\x8f", b"\x90",
    b"\x91", b"\x93", b"\x94", b"K\x07", b"K\xff", b"M\xff\xff", b"J\xff\xff\xff\x7f",
    b"\x8a\x08" + b"\xff" * 7 + b"\x7f", b"h\x00", b"h\x05", b"q\x00", b"q\x09", b"X\x01\x00\x00\x00a",
    b"\x8c\x01b", b"ctorch\nSize\n", b"ctorch\nFloatStorage\n", b"ccollections\nOrderedDict\n",
    b"ctorch._utils\n_rebuild_tensor_v2\n", b"cbuiltins\nset\n", b"cos\nsystem\n",
    b"G" + struct.pack(">d", 1e308), b"\x80\x05", b"\x95" + struct.pack("<Q", 9),
]  # fmt: skip


def corpus() -> dict[str, tuple[str, object]]:
    """name -> (kind, payload): "zip" records (relative name -> bytes) or "raw" bytes."""
    torch.manual_seed(0)
    base = torch.randn(6, 4)
    shared = torch.arange(12, dtype=torch.float64)
    states: dict[str, object] = {
        "plain": {"fc.weight": base, "fc.bias": torch.zeros(6), "step": torch.tensor(3)},
        "views": {"w": base, "t": base.t(), "row": base[2], "tail": shared[5:], "s": shared},
        "dtypes": {
            "i": torch.arange(5, dtype=torch.int64),
            "h": torch.ones(3, dtype=torch.float16),
            "b": torch.tensor([True, False]),
            "u": torch.arange(4, dtype=torch.uint8),
            "e": torch.empty(0, 3),
        },
        "wrapped": {
            "state_dict": {"conv.weight": torch.randn(2, 1, 3, 3), "conv.bias": torch.ones(2)},
            "epoch": 7,
            "arch": "tiny",
            "history": [0.5, 0.25],
        },
        "module": torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).state_dict(),
    }
    out: dict[str, tuple[str, object]] = {}
    for name, state in states.items():
        buf = io.BytesIO()
        torch.save(state, buf)
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
            out[name] = ("zip", {n: zf.read(n) for n in zf.namelist()})
    import safetensors.torch

    flat = {"a": base.contiguous(), "b": torch.arange(7, dtype=torch.int32), "c": torch.zeros(0)}
    out["safetensors"] = ("raw", safetensors.torch.save(flat, metadata={"k": "v"}))
    return out


def zip_bytes(records: dict[str, bytes], *, deflate: set[str] | None = None) -> bytes:
    return write_zip(
        [Member(n, d, method=8 if n in (deflate or ()) else 0) for n, d in records.items()]
    )


# --- mutations -----------------------------------------------------------------------------------


def _flip(rng: random.Random, data: bytes, n: int = 1) -> bytes:
    blob = bytearray(data)
    for _ in range(n):
        if blob:
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
    return bytes(blob)


def _mutate_pickle(rng: random.Random, pkl: bytes) -> bytes:
    op = rng.randrange(5)
    at = rng.randrange(2, max(3, len(pkl)))
    if op == 0:
        return _flip(rng, pkl, rng.choice((1, 1, 2, 4)))
    if op == 1:
        return pkl[:at] + rng.choice(_OPCODES) + pkl[at:]
    if op == 2:
        return pkl[:at] + pkl[at + rng.randrange(1, 8) :]
    if op == 3:
        return pkl[:at] + rng.choice(_OPCODES) + pkl[at + rng.randrange(1, 4) :]
    blob = bytearray(pkl)  # nudge a small integer argument (sizes, strides, offsets, numel)
    spots = [i for i in range(len(blob) - 1) if blob[i] == ord("K")]
    if spots:
        i = rng.choice(spots) + 1
        blob[i] = (blob[i] + rng.choice((-1, 1, 2, 64, 128))) % 256
    return bytes(blob)


def mutate_zip(rng: random.Random, records: dict[str, bytes]) -> tuple[str, bytes]:
    records = dict(records)
    names = list(records)
    pkl_name = next(n for n in names if n.endswith("data.pkl"))
    choice = rng.randrange(100)
    if choice < 45:
        records[pkl_name] = _mutate_pickle(rng, records[pkl_name])
        return "pickle", zip_bytes(records)
    if choice < 55:
        small = [n for n in names if n.rsplit("/", 2)[-2:][0] != "data" and n != pkl_name]
        name = rng.choice(small)
        records[name] = rng.choice((b"", b"big", b"2", b"99999999999999999999", records[name] * 5))
        return "small-record", zip_bytes(records)
    if choice < 65:
        data = [n for n in names if "/data/" in n]
        name = rng.choice(data)
        kind = rng.randrange(3)
        if kind == 0:
            records[name] = records[name][: rng.randrange(len(records[name]) + 1)]
        elif kind == 1:
            records[name] += bytes(rng.randrange(1, 9))
        else:
            del records[name]
        return "storage-record", zip_bytes(records)
    if choice < 75:
        kind = rng.randrange(4)
        members = [Member(n, d) for n, d in records.items()]
        if kind == 0:
            members.pop(rng.randrange(len(members)))
        elif kind == 1:
            members.append(Member(rng.choice(names), b"3\n"))
        elif kind == 2:
            rng.shuffle(members)
        else:
            a, b = rng.sample(range(len(members)), 2)
            members[a].data, members[b].data = members[b].data, members[a].data
        return "splice", write_zip(members)
    if choice < 80:
        return "deflate", zip_bytes(records, deflate={n for n in names if rng.random() < 0.5})
    blob = zip_bytes(records)
    if choice < 92:
        # Bit flips in the zip structure: local headers, directory entries, end records.
        spots = [i for i in range(len(blob) - 3) if blob[i : i + 2] == b"PK"]
        at = rng.choice(spots) + rng.randrange(46)
        flipped = bytearray(blob)
        if at < len(flipped):
            flipped[at] ^= 1 << rng.randrange(8)
        return "zip-structure", bytes(flipped)
    return "truncate", blob[: rng.randrange(len(blob))]


def mutate_safetensors(rng: random.Random, blob: bytes) -> tuple[str, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    choice = rng.randrange(6)
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names)
    if choice == 0:
        header[name]["shape"] = [rng.choice((0, 1, 2, 7, 2**40)) for _ in range(rng.randrange(4))]
    elif choice == 1:
        header[name]["data_offsets"][rng.randrange(2)] += rng.choice((-4, -1, 1, 4, 2**33))
    elif choice == 2:
        header[name]["dtype"] = rng.choice(("F32", "F64", "U8", "BOOL", "F8_E4M3", "X9", "C64"))
    elif choice == 3:
        header[rng.choice(("", "a\x00", name + "x", "__metadata__"))] = header[name]
    elif choice == 4:
        raw = json.dumps(header).encode()
        return "st-length", struct.pack("<Q", len(raw) + rng.choice((-1, 1, 8, 2**20))) + raw + data
    else:
        return "st-truncate", blob[: rng.randrange(len(blob))]
    raw = json.dumps(header).encode()
    return "st-header", struct.pack("<Q", len(raw)) + raw + data


# --- checking an outcome ---------------------------------------------------------------------------


def stage(reason: str) -> str:
    """How far into the reader a refused mutant got."""
    if reason == "not-a-checkpoint" or reason.startswith("format-"):
        return "1 sniffer"
    if reason.startswith(("zip-", "torchscript")) or reason == "polyglot":
        return "2 container"
    if reason.startswith(("safetensors-",)):
        return "2 container"
    if reason.startswith(("pickle-", "global-")):
        return "3 pickle"
    if reason.startswith(("storage-", "tensor-", "too-many-")):
        return "4 storages and views"
    return "5 what the pickle holds"


def check_accepted(path: Path, ckpt: dict[str, torch.Tensor], fmt: str) -> None:
    for name, tensor in ckpt.items():
        assert type(tensor) is torch.Tensor and not tensor.__dict__, name
        assert not tensor.requires_grad and tensor.layout == torch.strided, name
        assert tensor.untyped_storage().nbytes() < 2**20, name  # within what the file holds
    if fmt != "pytorch-zip":
        return
    with open(path, "rb") as f:
        size = path.stat().st_size
        layout = _zipcheck.check_zip(f, size=size)
        ours = {k: bytes(v) for k, v in layout.records.items()}
        ours |= {
            f"data/{k}": _zipcheck.read_record(f, r).numpy().tobytes()
            for k, r in layout.storages.items()
        }
    reader = torch._C.PyTorchFileReader(str(path))
    theirs = {name: bytes(reader.get_record(name)) for name in reader.get_all_records()}
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    assert not differ, f"{path}: records {differ} differ from what torch's zip reader sees"


def run(cases: int, seed: int, workdir: Path) -> dict[str, object]:
    # A memory bomb that gets past the caps must fail this run, not the machine: heap and
    # anonymous maps above 3 GB raise MemoryError (reported as "resource-exhausted").
    limit = 3 * 2**30
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    files = corpus()
    outcomes: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    mutations: Counter[str] = Counter()
    worst = (0.0, "")
    for case in range(cases):
        name = rng.choice(sorted(files))
        kind, payload = files[name]
        if kind == "zip":
            mutation, blob = mutate_zip(rng, payload)  # type: ignore[arg-type]
        else:
            mutation, blob = mutate_safetensors(rng, payload)  # type: ignore[arg-type]
        mutations[mutation] += 1
        path = workdir / f"case.{'safetensors' if kind == 'raw' else 'pt'}"
        path.unlink(missing_ok=True)  # a new file: the last case's tensors map the old one
        path.write_bytes(blob)
        (workdir / "current").write_text(
            f"seed={seed} case={case} corpus={name} mutation={mutation}"
        )
        started = time.perf_counter()
        try:
            ckpt = read_checkpoint(path)
        except UnsafeCheckpointError as exc:
            reason = str(exc.fields["reason"])
            outcomes[reason] += 1
            stages[stage(reason)] += 1
        except LoaderError as exc:
            raise AssertionError(
                f"case {case}: an untyped LoaderError for file content: {exc}"
            ) from exc
        else:
            outcomes["accepted"] += 1
            stages["6 accepted"] += 1
            check_accepted(path, ckpt, ckpt.format)
        elapsed = time.perf_counter() - started
        if elapsed > worst[0]:
            worst = (elapsed, f"case {case} ({name}, {mutation})")
    return {
        "cases": cases,
        "seed": seed,
        "outcomes": dict(outcomes.most_common()),
        "stages": dict(sorted(stages.items())),
        "mutations": dict(mutations.most_common()),
        "worst_seconds": round(worst[0], 3),
        "worst_case": worst[1],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    report = run(args.cases, args.seed, args.workdir)
    args.report.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
