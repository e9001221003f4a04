"""Architecture facts on the meta device against a real CPU instantiation.

    python benchmarks/bench_archfacts.py                 # a handful of nets: meta vs real, ratio
    python benchmarks/bench_archfacts.py --all-timm --workers 2 --budget 900
                                                         # every pretrained timm architecture

The first form builds each net twice, each in a fresh process (so neither inherits the
other's imports or caches): once as securitynet does (meta device, FLOPs counted on meta
tensors), once the ordinary way (random weights on the CPU, FlopCounterMode over a real
forward pass of one zero image); it checks that both agree and prints the time and peak
memory of each, then one figure: how many times faster the meta way is in total.

FLOPs of attention nets differ, and the meta figure is the complete one: on a real CPU
tensor ``scaled_dot_product_attention`` runs a fused kernel that FlopCounterMode has no
formula for (the attention products go uncounted), while on meta tensors it takes the
math path and its matrix products are counted (ViT-B/16: 35.13 GFLOPs = 2 x timm's
published 17.58 GMACs; the CPU count, 33.70, leaves out 1.43).

The second measures the whole timm registry (distinct architectures of
``timm.list_models(pretrained=True)``) with an empty cache and prints the wall time and the
failures. Neither reads or writes the user's cache.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_ARCHS = [
    ("timm", "resnet50"),
    ("timm", "convnext_base"),
    ("timm", "vit_base_patch16_224"),
    ("timm", "efficientnet_b3"),
    ("timm", "swin_base_patch4_window7_224"),
    ("timm", "regnety_032"),
    ("torchvision", "resnet152"),
    ("torchvision", "vit_l_16"),
    ("pytorchcv", "resnet20_cifar10"),
]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _meta(builder: str, arch: str, out: Any) -> None:
    import torch

    torch.set_num_threads(1)
    from securitynet.annotate.archfacts import compute_arch_facts

    compute_arch_facts("timm", "test_resnet")  # imports and first-call costs out of the timing
    base = _peak_rss_mb()
    started = time.perf_counter()
    facts = compute_arch_facts(builder, arch)
    seconds = time.perf_counter() - started
    out.put(
        {
            "params": facts.params,
            "flops": round((facts.gflops or 0) * 1e9),
            "seconds": seconds,
            "peak_mb": _peak_rss_mb() - base,
            "error": facts.error,
            "input_size": facts.input_size,
        }
    )


def _real(builder: str, arch: str, input_size: tuple[int, int, int], out: Any) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    if builder == "timm":
        import timm

        def make() -> torch.nn.Module:
            return timm.create_model(arch, pretrained=False)
    elif builder == "torchvision":
        from torchvision import models

        def make() -> torch.nn.Module:
            return models.get_model(arch, weights=None)
    else:
        from pytorchcv.model_provider import get_model

        def make() -> torch.nn.Module:
            return get_model(arch, pretrained=False)

    base = _peak_rss_mb()
    started = time.perf_counter()
    net = make().eval()
    params = sum(p.numel() for p in net.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *input_size))
    seconds = time.perf_counter() - started
    out.put(
        {
            "params": params,
            "flops": counter.get_total_flops(),
            "seconds": seconds,
            "peak_mb": _peak_rss_mb() - base,
        }
    )


def _in_fresh_process(target: Any, *args: Any) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def compare(archs: list[tuple[str, str]]) -> None:
    total_meta = total_real = 0.0
    print(
        f"{'net':42} {'params':>12} {'GFLOPs':>9} {'meta s':>7} {'real s':>7} {'meta MB':>8} {'real MB':>8} agree"
    )
    for builder, arch in archs:
        meta = _in_fresh_process(_meta, builder, arch)
        if meta["error"]:
            print(f"{builder}:{arch}: meta failed: {meta['error']}")
            continue
        real = _in_fresh_process(_real, builder, arch, tuple(meta["input_size"]))
        if meta["params"] != real["params"]:
            agree = f"NO: params {real['params']:,} on the CPU"
        elif meta["flops"] != real["flops"]:
            agree = f"params; CPU counts {real['flops'] / 1e9:.2f} GFLOPs"
        else:
            agree = "yes"
        total_meta += meta["seconds"]
        total_real += real["seconds"]
        print(
            f"{builder + ':' + arch:42} {meta['params']:>12,} {meta['flops'] / 1e9:>9.2f} {meta['seconds']:>7.2f} "
            f"{real['seconds']:>7.2f} {meta['peak_mb']:>8.0f} {real['peak_mb']:>8.0f} {agree}"
        )
    print(
        f"meta device vs real CPU instantiation: {total_meta:.2f} s vs {total_real:.2f} s, "
        f"{total_real / max(total_meta, 1e-9):.1f}x faster"
    )


def all_timm(workers: int, budget: float | None, report: Path | None) -> None:
    import timm

    from securitynet.annotate.archfacts import ArchFactsCache, ArchSpec, compute_arch_facts_batch

    archs = sorted({name.split(".", 1)[0] for name in timm.list_models(pretrained=True)})
    specs = [ArchSpec.of("timm", a) for a in archs]
    with tempfile.TemporaryDirectory() as folder:
        batch = compute_arch_facts_batch(
            specs, cache=ArchFactsCache(Path(folder)), workers=workers, budget_s=budget
        )
    failures = {str(s): f.error for s, f in batch.facts.items() if f.error}
    partial = sum(1 for f in batch.facts.values() if f.error and f.params is not None)
    slowest = sorted(batch.facts.items(), key=lambda kv: -kv[1].seconds)[:5]
    print(
        f"timm {timm.__version__}: {len(archs)} architectures, {workers} worker(s): {batch.line()}"
    )
    print(f"failures: {len(failures)} ({partial} with params but no FLOPs)")
    for name, error in failures.items():
        print(f"  {name}: {error}")
    print("slowest: " + ", ".join(f"{s.architecture} {f.seconds:.1f} s" for s, f in slowest))
    if report is not None:
        report.write_text(
            json.dumps({str(s): f.to_json() for s, f in batch.facts.items()}, indent=1)
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--all-timm", action="store_true", help="Measure every pretrained timm architecture."
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--budget", type=float, default=None, help="Seconds (with --all-timm).")
    parser.add_argument(
        "--report", type=Path, default=None, help="Write every result as JSON (with --all-timm)."
    )
    parser.add_argument("archs", nargs="*", help="builder:architecture, e.g. timm:resnet50")
    args = parser.parse_args(argv)
    if args.all_timm:
        all_timm(args.workers, args.budget, args.report)
    else:
        chosen = [tuple(a.split(":", 1)) for a in args.archs] or DEFAULT_ARCHS
        compare(chosen)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
