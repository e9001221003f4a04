"""`securitynet eval mia|accuracy` and `securitynet results` on the real overfitted GitHub
checkpoint, through main() (the real error boundary), with the catalogue, data folder and
offline mode a user's shell would give. The README's commands are these."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securitynet.catalogue.api import Catalogue
from tests.evaluate.conftest import OVERFITTED


def test_eval_mia_prints_every_metric_stores_them_and_draws_the_roc(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    roc = tmp_path / "roc.png"
    code, out, err = run(
        "eval", "mia", OVERFITTED, "--data", "mnist", "--members", "random_split:42:50", "--nonmembers", "test",
        "--max-samples", "500", "--attacks", "metric", "--expect-member-accuracy", "0.96", "--bootstrap", "20",
        "--plot", str(roc), "--format", "json",
    )
    assert code == 0, err
    rows = json.loads(out)
    aucs = {r["variant"]: r["value"] for r in rows if r["metric"] == "auc"}
    assert set(aucs) == {"correctness", "confidence", "entropy", "modified_entropy"}
    assert aucs["confidence"] > 0.75 and all(r["lower"] <= r["value"] <= r["upper"] for r in rows if r["metric"] == "auc")
    assert {r["metric"] for r in rows} >= {"balanced_accuracy", "tpr_at_0_1pct_fpr", "tpr_at_1pct_fpr", "members"}
    assert roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "4 stored, 0 reused, 0 failed" in err

    code, out, _ = run("results", "--attack", "mia", "--metric", "auc", "--format", "json")
    stored = {r["variant"]: r["value"] for r in json.loads(out) if r["entry_id"] == OVERFITTED}
    assert code == 0 and stored["confidence"] == pytest.approx(aucs["confidence"])
    code, out, err = run("results", "--attack", "mia", "--metric", "auc")
    assert code == 0 and "modified_entropy" in out and "figures" in err
    code, out, _ = run(
        "sql", "SELECT entry_id, variant, value, lower, upper FROM v_results WHERE metric = 'tpr_at_1pct_fpr'", "--format", "json"
    )
    assert code == 0 and {r["variant"] for r in json.loads(out)} >= {"confidence", "modified_entropy"}


def test_a_wrong_member_set_fails_loudly(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(
        "eval", "mia", OVERFITTED, "--data", "mnist", "--members", "random_split:43:50", "--max-samples", "300",
        "--attacks", "confidence", "--expect-member-accuracy", "0.96", "--bootstrap", "0",
    )
    assert code == 1 and "not its training set" in err and "1 failed" in err
    code, out, _ = run("results", "--failed", "--format", "json")
    assert code == 0 and any("not its training set" in r["error"] for r in json.loads(out))


def test_user_errors_are_one_line(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("eval", "mia", OVERFITTED, "--data", "imagenet-9000")
    assert code == 1 and err.startswith("error: unknown data set") and "Traceback" not in err
    code, _, err = run("eval", "mia", OVERFITTED, "--attacks", "shokri")
    assert code == 1 and "unknown membership attack" in err
    code, _, err = run("eval", "mia", "--data", "mnist")
    assert code == 1 and "no entries to evaluate" in err
    code, _, err = run("eval", "mia", OVERFITTED, "--members", "train[:100]", "--nonmembers", "train[50:150]")
    assert code == 1 and "both members and non-members" in err


def test_eval_accuracy_stores_a_measured_claim(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("eval", "accuracy", OVERFITTED, "--data", "mnist", "--max-samples", "1000", "--format", "json")
    assert code == 0, err
    (top1,) = [r for r in json.loads(out) if r["metric"] == "top1"]
    assert 54 < top1["value"] < 64 and top1["lower"] < top1["value"] < top1["upper"]
    code, out, _ = run("show", OVERFITTED, "--format", "json")
    claims = json.loads(out)["claims"]
    assert any(c["kind"] == "measured" and c["source"] == "securitynet-eval" for c in claims)


def test_the_readme_python_example_runs(run, mnist_catalogue: Catalogue) -> None:  # type: ignore[no-untyped-def]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Evaluating entries") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the env (run fixture) points at the catalogue
    report = namespace["report"]
    assert report.failed == 0  # type: ignore[attr-defined]
    variants = {ev.variant for o in report.outcomes for ev in o.evaluations}  # type: ignore[attr-defined]
    assert variants == {"correctness", "confidence", "entropy", "modified_entropy", "mlp_top3"}


def test_eval_mia_verified_with_a_given_epsilon(run) -> None:  # type: ignore[no-untyped-def]
    """The real overfitted net (not IBP-trained: its worst case at eps 0.1 certifies almost
    nothing) bounded through its catalogued layers; without --verified-eps the attack fails
    with the reason."""
    args = ("eval", "mia", OVERFITTED, "--data", "mnist", "--members", "random_split:42:50", "--max-samples", "100",
            "--bootstrap", "0", "--format", "json")
    code, out, err = run(*args, "--attacks", "verified", "--verified-eps", "0.01")
    assert code == 0, err
    aucs = {r["variant"]: r["value"] for r in json.loads(out) if r["metric"] == "auc"}
    assert set(aucs) == {"verified_correctness", "verified_confidence", "verified_entropy", "verified_modified_entropy"}
    assert aucs["verified_confidence"] > 0.6  # at a small radius the worst case still tells members apart
    code, _, err = run(*args, "--attacks", "verified_confidence")
    assert code == 1 and "need a certified epsilon" in err and "1 failed" in err
