"""Fuzzing as a test: thousands of structural mutants of benign checkpoints, read in a child
process (so a crash fails this test, not the run). Each must end in a typed refusal or a
dict of plain tensors; each accepted zip must hold, record for record, the bytes torch's own
zip reader sees. The report (outcomes, how far into the reader the mutants got, the worst
time and memory) is printed; run with ``-s`` to see it, or ``SECURITYNET_FUZZ_CASES=20000``
for a longer run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_fuzz(tmp_path: Path, *, cases: int, seed: int, timeout: float) -> dict[str, object]:
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.loader.safe_fuzz", "--cases", str(cases), "--seed",
         str(seed), "--workdir", str(tmp_path / "work"), "--report", str(report)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    current = tmp_path / "work" / "current"
    where = current.read_text() if current.exists() else "before the first case"
    assert proc.returncode == 0, (
        f"the fuzz child exited {proc.returncode} at {where}:\n{proc.stderr[-4000:]}"
    )
    result: dict[str, object] = json.loads(report.read_text())
    print(json.dumps(result, indent=2))
    return result


def check(result: dict[str, object], cases: int) -> None:
    stages: dict[str, int] = result["stages"]  # type: ignore[assignment]
    assert sum(stages.values()) == cases
    # Most mutants get past the sniffer, and many past the container into the pickle checks.
    assert stages.get("1 sniffer", 0) < cases * 0.1, stages
    deeper = sum(v for k, v in stages.items() if k >= "3")
    assert deeper > cases * 0.3, stages
    assert stages.get("6 accepted", 0) > 0, stages  # the checks are not refusing everything
    assert float(result["worst_seconds"]) < 5.0  # type: ignore[arg-type]
    # A check that failed unexpectedly, or memory exhausted under the caps, is a bug.
    outcomes: dict[str, int] = result["outcomes"]  # type: ignore[assignment]
    assert not {"check-failed", "resource-exhausted"} & set(outcomes), outcomes


def test_fuzz_structural_mutants(tmp_path: Path) -> None:
    cases = int(os.environ.get("SECURITYNET_FUZZ_CASES", "3000"))
    seed = int(os.environ.get("SECURITYNET_FUZZ_SEED", "1"))
    check(run_fuzz(tmp_path, cases=cases, seed=seed, timeout=max(600, cases / 10)), cases)
