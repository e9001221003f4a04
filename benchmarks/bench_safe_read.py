"""Our safe read of a ResNet-50-sized state dict against the plain library calls, timed.

    python benchmarks/bench_safe_read.py [--repeat 7] [--dir /tmp/somewhere]

Saves a ResNet-50 state dict with random weights (25.6 M values, ~98 MiB) once as a torch
zip and once as safetensors, warms the page cache, then takes the median of ``--repeat``
runs of:

* ``read_checkpoint(zip)``  vs  ``torch.load(zip, weights_only=True)``
* ``read_checkpoint(st)``   vs  ``safetensors.torch.load_file(st)``

and prints the ratios (ours / theirs, the median of per-round ratios: the calls take turns,
so a busy shared machine slows all of them alike), plus what our parts cost alone: the
container checks with every CRC, and the opcode scan plus dry run of data.pkl. Our reader
never calls ``torch.load``: it builds the tensors from the records it checked, so the
comparison is our whole read against torch's whole read (on the path and on an open file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


def resnet50_state() -> dict[str, torch.Tensor]:
    try:
        from torchvision.models import resnet50

        torch.manual_seed(0)
        return resnet50(weights=None).state_dict()
    except ImportError:  # same tensor count and size without torchvision
        torch.manual_seed(0)
        return {f"layer{i}.weight": torch.randn(80_000) for i in range(320)}


def interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions taking turns (a noisy, shared machine
    slows neighbours alike, so per-round ratios are steadier than ratios of separate runs)."""
    for fn in fns.values():
        fn()  # warm: page cache, lazy imports, torch's one-time self-check
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:7.1f} ms"


def ratio(ours: list[float], theirs: list[float]) -> str:
    return f"{statistics.median(a / b for a, b in zip(ours, theirs, strict=True)):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write the two files (default: a temp dir)"
    )
    args = parser.parse_args()

    import safetensors.torch

    from securitynet.loader import _picklecheck, _zipcheck
    from securitynet.loader.safe import read_checkpoint

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="bench-safe-read-"))
    workdir.mkdir(parents=True, exist_ok=True)
    state = resnet50_state()
    zip_path, st_path = workdir / "resnet50.pt", workdir / "resnet50.safetensors"
    torch.save(state, zip_path)
    safetensors.torch.save_file(state, st_path)
    values = sum(t.numel() for t in state.values())
    print(
        f"ResNet-50 state dict: {len(state)} tensors, {values / 1e6:.1f} M values; "
        f"zip {zip_path.stat().st_size / 2**20:.1f} MiB, safetensors {st_path.stat().st_size / 2**20:.1f} MiB; "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, median of {args.repeat}"
    )

    def torch_load_open_file() -> object:
        with open(zip_path, "rb") as f:
            return torch.load(f, map_location="cpu", weights_only=True)

    with open(zip_path, "rb") as f:
        layout = _zipcheck.check_zip(f, size=os.fstat(f.fileno()).st_size)
    sizes = {k: r.size for k, r in layout.storages.items()}

    def container_checks() -> object:
        with open(zip_path, "rb") as f:
            return _zipcheck.check_zip(f, size=os.fstat(f.fileno()).st_size)

    t = interleaved(
        {
            "ours_zip": lambda: read_checkpoint(zip_path),
            "torch_path": lambda: torch.load(zip_path, map_location="cpu", weights_only=True),
            "torch_file": torch_load_open_file,
            "ours_st": lambda: read_checkpoint(st_path),
            "lib_st": lambda: safetensors.torch.load_file(st_path),
            "checks": container_checks,
            "dry_run": lambda: _picklecheck.check_zip_pickle(layout.data_pkl, sizes),
        },
        args.repeat,
    )
    print(
        f"  torch zip   : ours {ms(t['ours_zip'])}   torch.load(path, weights_only=True) {ms(t['torch_path'])}"
        f"   ratio {ratio(t['ours_zip'], t['torch_path'])}"
    )
    print(
        f"                {'':18} torch.load(open file, same)         {ms(t['torch_file'])}"
        f"   ratio {ratio(t['ours_zip'], t['torch_file'])}"
    )
    print(
        f"  safetensors : ours {ms(t['ours_st'])}   safetensors.torch.load_file         {ms(t['lib_st'])}"
        f"   ratio {ratio(t['ours_st'], t['lib_st'])}"
    )
    print(
        f"  parts of ours on the zip: container checks with every CRC {ms(t['checks'])}, "
        f"opcode scan and dry run of data.pkl {ms(t['dry_run'])}"
    )


if __name__ == "__main__":
    main()
