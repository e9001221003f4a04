"""Signature matching of bare state dicts against every registry architecture.

    python benchmarks/bench_archsig.py --cache /tmp/sigs            # build (or read) the index, then match
    python benchmarks/bench_archsig.py --cache /tmp/sigs --sample 20 --workers 2

1. The signature index of timm, torchvision and pytorchcv (every architecture, built on
   the meta device; read from ``--cache`` when it is there): build time, size, failures.
2. State dicts saved from registry architectures with random weights (every torchvision
   architecture and ``--sample`` each of timm and pytorchcv, nets up to ``--max-params``),
   each in three forms: as saved, with every name under ``module.``, and with a 10-class
   head. Each is matched (and an ambiguous match settled on its own tensors).

Prints the share resolved to the right architecture (or to one shown to compute the same
function), the share left ambiguous with the right one among the candidates, the wrong and
unresolved ones, the time per state dict, and the ratio against the obvious alternative:
building every registry architecture and comparing its tensors with the checkpoint's
(the index's summed build time).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="Signature cache folder.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sample", type=int, default=25, help="Architectures each of timm and pytorchcv.")
    parser.add_argument("--max-params", type=int, default=30_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cached-only", action="store_true",
                        help="Match against the architectures already in --cache; build none (says how many).")
    args = parser.parse_args()

    import torch

    from securitynet.annotate.archfacts import ArchSpec, get_builder
    from securitynet.annotate.archsig import (
        LIBRARIES,
        ArchSignature,
        IndexBuild,
        SignatureCache,
        SignatureIndex,
        build_index,
        list_architectures,
        settle,
    )

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cache = SignatureCache(args.cache)
    if args.cached_only:
        started = time.perf_counter()
        sigs = [ArchSignature.from_json(lib, arch, d) for lib in LIBRARIES
                for arch, d in cache.read(lib).items() if "tensors" in d]
        built = IndexBuild(SignatureIndex(sigs), cached=len(sigs), seconds=time.perf_counter() - started)
        total = sum(len(list_architectures(lib)) for lib in LIBRARIES)
        print(f"cached only: {len(sigs)} of the registries' {total} architectures are in the index "
              f"({', '.join(f'{lib} {len(cache.read(lib))}/{len(list_architectures(lib))}' for lib in LIBRARIES)})")
    else:
        built = build_index(LIBRARIES, cache=cache, workers=args.workers, progress=sys.stderr.isatty())
    index = built.index
    print(f"index: {index.size} architectures ({built.computed} built now, {built.cached} cached, "
          f"{len(built.failed)} failed to build) in {built.seconds:.1f} s")
    brute = sum(float(d.get("seconds") or 0) for lib in LIBRARIES for d in cache.read(lib).values())
    print(f"building every registry architecture once on meta: {brute:.1f} s (the per-checkpoint alternative)")

    rng = random.Random(args.seed)
    by_lib: dict[str, list[str]] = {lib: [] for lib in LIBRARIES}
    for sigs in index.by_names.values():
        for sig in sigs:
            params = sum(int(torch.Size(s).numel()) for _, s in sig.tensors)
            if params <= args.max_params:
                by_lib[sig.library].append(sig.architecture)
    chosen = [("torchvision", a) for a in sorted(by_lib["torchvision"])]
    for lib in ("timm", "pytorchcv"):
        chosen += [(lib, a) for a in rng.sample(sorted(by_lib[lib]), min(args.sample, len(by_lib[lib])))]

    outcome = {"right": 0, "ambiguous": 0, "wrong": 0, "unresolved": 0, "skipped": 0}
    match_ms: list[float] = []
    settle_ms: list[float] = []
    wrong: list[str] = []
    for lib, arch in chosen:
        for form in ("plain", "module.", "10 classes"):
            torch.manual_seed(args.seed)
            spec = ArchSpec.of(lib, arch, num_classes=10 if form == "10 classes" else None)
            try:
                net = get_builder(lib).build(spec)
            except Exception:
                outcome["skipped"] += 1
                continue
            state = net.state_dict()
            if form == "module.":
                state = {"module." + k: v for k, v in state.items()}
            t0 = time.perf_counter()
            res = index.match(state)
            match_ms.append((time.perf_counter() - t0) * 1000)
            if res.status == "ambiguous":
                t0 = time.perf_counter()
                res = settle(res, state)
                settle_ms.append((time.perf_counter() - t0) * 1000)
            names = {(c.library, c.architecture) for c in (*res.candidates, *res.equivalent)}
            if res.status == "resolved" and (lib, arch) in names:
                outcome["right"] += 1
            elif res.status == "ambiguous" and (lib, arch) in names:
                outcome["ambiguous"] += 1
            elif res.status == "resolved":
                outcome["wrong"] += 1
                wrong.append(f"{lib}:{arch} ({form}) -> {res.resolved}")
            else:
                outcome["unresolved"] += 1
                wrong.append(f"{lib}:{arch} ({form}) unresolved: {res.reason}")
    total = sum(v for k, v in outcome.items() if k != "skipped")
    print(f"state dicts: {total} from {len(chosen)} architectures ({outcome['skipped']} could not be built)")
    for key in ("right", "ambiguous", "wrong", "unresolved"):
        print(f"  {key:10s} {outcome[key]:4d}  {100 * outcome[key] / max(total, 1):5.1f} %")
    for line in wrong[:15]:
        print(f"    {line}")
    med = statistics.median(match_ms) if match_ms else 0.0
    print(f"match: median {med:.2f} ms, mean {statistics.fmean(match_ms):.2f} ms per state dict against all "
          f"{index.size} registry nets; settle (when ambiguous, {len(settle_ms)}x): "
          f"median {statistics.median(settle_ms) if settle_ms else 0:.0f} ms")
    print(f"ratio: {brute * 1000 / max(med, 1e-6):,.0f}x faster than building every registry net per checkpoint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
