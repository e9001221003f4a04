"""Mutation score of one module against its tests: mutmut's mutants, a forking runner.

    python benchmarks/mutation_score.py securitynet/loader/cache.py \\
        tests/loader/test_cache_confinement.py tests/loader/test_loader_cache.py

Mutants are mutmut's own (``mutmut.list_mutations``: numbers, strings, operators,
keywords, names, arguments...). ``mutmut run`` starts a fresh interpreter and pytest per
mutant; on a loaded 2-core machine that is 30 s a mutant. Here the parent imports pytest
and the heavy third-party libraries once and forks a child per mutant, which writes the
mutant over the module (restored afterwards), imports the package afresh and runs the
tests with ``-x``. A mutant is killed when the tests fail or run past ``--timeout``.

Prints the score (killed / all, or of a ``--sample``), the survivors as diffs, and seconds
per mutant.
Run it on a scratch copy of the repository (it rewrites the module while it runs), in an
environment with ``pip install 'mutmut==2.5.1'`` (the API used here; the ``mutation`` extra
installs mutmut 3 for ``mutmut run`` over the safe reader, configured in pyproject.toml).
"""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import time
from pathlib import Path


def _mutants(path: Path) -> tuple[str, list[object]]:
    try:
        from mutmut import ALL, Context, list_mutations
    except ImportError as exc:  # mutmut 3 has another API
        raise SystemExit("needs mutmut 2.x: pip install 'mutmut==2.5.1'") from exc

    source = path.read_text()
    return source, list_mutations(Context(source=source, filename=str(path), mutation_id=ALL))


def _mutated(path: Path, source: str, mutation_id: object) -> str:
    from mutmut import Context, mutate

    text, _ = mutate(Context(source=source, filename=str(path), mutation_id=mutation_id))
    return str(text)


def _run_tests(pytest_args: list[str], timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: fresh imports of the package, pytest, exit with its status
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        sys.dont_write_bytecode = True
        import pytest

        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *pytest_args])
        os._exit(int(code))
    deadline = started + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("survived" if code == 0 else "killed"), time.monotonic() - started
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - started
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("pytest_args", nargs="+")
    parser.add_argument("--timeout", type=float, default=0, help="seconds (default: 5x baseline)")
    parser.add_argument(
        "--sample", type=int, default=0, help="test a random sample of this many mutants"
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--preload",
        default="sqlalchemy,typer,pydantic,pydantic_settings,rich,securitynet.catalogue.api",
        help="modules the parent imports once (never the module under test)",
    )
    args = parser.parse_args()

    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # restore the module on the way out
    for name in filter(None, args.preload.split(",")):
        __import__(name)
    import pytest  # noqa: F401  (imported once, here, for every child)

    target = ".".join(args.module.with_suffix("").parts)
    if target in sys.modules:
        raise SystemExit(f"--preload imported {target}: its mutants would never be loaded")

    cached = args.module.parent / "__pycache__"
    for stale in cached.glob(f"{args.module.stem}.*.pyc"):
        stale.unlink()
    source, mutants = _mutants(args.module)
    n_all = len(mutants)
    if args.sample and args.sample < n_all:
        import random

        mutants = random.Random(args.seed).sample(mutants, args.sample)
    baseline, base_seconds = _run_tests(args.pytest_args, 3600)
    if baseline != "survived":
        raise SystemExit("the tests fail without any mutant")
    timeout = args.timeout or max(30.0, 5 * base_seconds)
    print(
        f"{args.module}: {len(mutants)} of {n_all} mutants; baseline {base_seconds:.1f} s",
        flush=True,
    )
    outcomes: dict[str, int] = {"killed": 0, "survived": 0, "timeout": 0}
    survivors: list[str] = []
    started = time.monotonic()
    try:
        for n, mutation_id in enumerate(mutants, 1):
            text = _mutated(args.module, source, mutation_id)
            args.module.write_text(text)
            outcome, _ = _run_tests(args.pytest_args, timeout)
            outcomes[outcome] += 1
            if outcome == "survived":
                diff = difflib.unified_diff(
                    source.splitlines(), text.splitlines(), lineterm="", n=0
                )
                survivors.append("\n".join(list(diff)[2:]))
                print(f"--- survived\n{survivors[-1]}", flush=True)
            if n % 10 == 0:
                print(f"  {n}/{len(mutants)}: {outcomes}", flush=True)
    finally:
        args.module.write_text(source)
    total = sum(outcomes.values())
    dead = outcomes["killed"] + outcomes["timeout"]
    print(
        f"\n{args.module}: {dead}/{total} killed ({100 * dead / max(total, 1):.1f} %), {outcomes}"
    )
    print(f"{(time.monotonic() - started) / max(total, 1):.2f} s per mutant")


if __name__ == "__main__":
    main()
