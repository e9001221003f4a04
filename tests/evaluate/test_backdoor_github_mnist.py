"""`securitynet eval backdoor` on the real public `mnist_cnn.pt` (not backdoored), through
main() with the catalogue, data folder and offline mode a user's shell would give: figures
printed, stored as attack 'backdoor-detection', reused, queried back; the README's commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.evaluate.conftest import NORMAL

STRIP = ("eval", "backdoor", NORMAL, "--method", "strip", "--data", "mnist", "--max-samples", "600",
         "--trigger", "patch:3")  # fmt: skip
CLEANSE = ("eval", "backdoor", NORMAL, "--method", "neural-cleanse", "--data", "mnist", "--max-samples", "512",
           "--steps", "10")  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_strip_on_a_clean_public_net_rejects_about_frr_of_anything_and_is_stored(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    figure = tmp_path / "strip.png"
    code, out, err = run(*STRIP, "--plot", str(figure), "--format", "json")
    assert code == 0, err
    rows = {r["metric"]: r for r in json.loads(out)}
    assert {r["variant"] for r in rows.values()} == {"strip"} and "1 stored, 0 reused, 0 failed" in err
    assert rows["threshold"]["value"] > 0
    # the threshold was set on other clean images at 1 % FRR: about that many held-out ones fall below it
    assert rows["clean_rejected"]["value"] <= 0.05
    # not backdoored: a white patch does not make its blended predictions certain
    detection = rows["detection_rate"]
    assert detection["value"] < 0.2 and detection["lower"] <= detection["value"] <= detection["upper"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code, _, err = run(*STRIP)
    assert code == 0 and "0 stored, 1 reused" in err
    code, out, _ = run("results", "--attack", "backdoor-detection", "--metric", "detection_rate", "--format", "json")
    (stored,) = [r for r in json.loads(out) if r["entry_id"] == NORMAL and r["variant"] == "strip"]
    assert code == 0 and stored["value"] == pytest.approx(detection["value"]) and stored["dataset"] == "MNIST"


def test_neural_cleanse_scans_every_label_stores_norms_and_draws_the_triggers(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    grid = tmp_path / "triggers.png"
    code, out, err = run(*CLEANSE, "--plot", str(grid), "--format", "json")
    assert code == 0, err
    rows = {r["metric"]: r["value"] for r in json.loads(out) if r["variant"] == "neural-cleanse"}
    norms = [rows[f"norm_{y}"] for y in range(10)]
    assert rows["labels"] == 10 and all(0 < n < 28 * 28 for n in norms)
    assert rows["top_label"] == norms.index(min(norms)) and rows["anomaly_index_max"] >= 0
    flagged = {k for k in rows if k.startswith("flagged_")}
    assert rows["flagged"] == len(flagged)  # each flagged label is its own figure
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"figure: {grid}" in err
    code, _, err = run(*CLEANSE, "--labels-per-batch", "5")  # batching changes the speed, not the verdict
    assert code == 0 and "0 stored, 1 reused" in err
    code, out, _ = run("results", "--attack", "backdoor-detection", "--variant", "neural-cleanse", "--format", "json")
    stored = {r["metric"]: r["value"] for r in json.loads(out) if r["entry_id"] == NORMAL}
    assert stored["anomaly_index_max"] == pytest.approx(rows["anomaly_index_max"])


def test_neural_cleanse_over_its_budget_is_refused_and_recorded(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("eval", "backdoor", NORMAL, "--method", "neural-cleanse", "--max-samples", "64",
                       "--steps", "100000", "--budget-s", "1")
    assert code == 1 and "over the budget" in err and "1 failed" in err


def test_user_errors_are_one_line(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("eval", "backdoor", NORMAL, "--trigger", "square:3")
    assert code == 1 and err.startswith("error: bad trigger 'square:3'") and "patch:SIZE" in err
    code, _, err = run("eval", "backdoor", NORMAL, "--trigger", "patch:3:2.5")
    assert code == 1 and "bad trigger 'patch:3:2.5'" in err and "Traceback" not in err
    code, _, err = run("eval", "backdoor", NORMAL, "--method", "activation-clustering")
    assert code == 1 and "unknown backdoor detection method" in err
    code, _, err = run("eval", "backdoor", NORMAL, "--method", "neural-cleanse", "--trigger", "patch:3")
    assert code == 1 and "--trigger is for STRIP" in err
    code, _, err = run("eval", "backdoor", NORMAL, "--split", "validation", "--max-samples", "30")
    assert code == 1 and "no split 'validation'" in err and "1 failed" in err
    # a patch that does not fit the image is this entry's failure, stored and reported
    code, _, err = run("eval", "backdoor", NORMAL, "--trigger", "patch:40", "--max-samples", "30")
    assert code == 1 and "does not fit" in err and "1 failed" in err


def test_the_readme_commands_run(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Backdoor detection", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(c, comments=True) for c in section.replace("\\\n", " ").strip().splitlines()]
    assert commands and all(c[0] == "securitynet" for c in commands)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        code, _, err = run(*command[1:])
        assert code == 0, (command, err)
