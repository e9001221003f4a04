"""The model-reuse attack with the real public `mnist_cnn.pt` as the benign primitive: the
host reuses its features (head cut off) and trains a fresh head on MNIST; the malicious
primitive makes every host classify the test digit 17 (a 7) as a 3 while the hosts' clean
accuracy moves by less than a point. Whether STRIP rejects the target is stored, not
assumed. Through ``securitynet eval reuse`` (the README's command) and ``evaluate()``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from securitynet.attacks.reuse import ReuseConfig
from securitynet.catalogue.api import Catalogue
from securitynet.evaluate import DataSpec, ReuseRequest, evaluate
from tests.evaluate.conftest import NORMAL

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def readme_command() -> list[str]:
    """The README's ``securitynet eval reuse`` command, as arguments."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Model reuse") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```", section.index("```bash") + 7)]
    lines = block.replace("\\\n", " ").splitlines()
    command = next(line for line in lines if line.strip().startswith("securitynet eval reuse"))
    return shlex.split(command)[1:]


@pytest.fixture
def run(run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # the README command writes its figure here
    return run


def test_the_readme_reuse_command_hits_its_target_and_keeps_clean_accuracy(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args = readme_command()
    assert args[:3] == ["eval", "reuse", NORMAL] and "--plot" in args
    code, out, err = run(*args, "--format", "json")
    assert code == 0, err
    rows = {r["metric"]: r for r in json.loads(out)}
    assert {r["attack"] for r in rows.values()} == {"model-reuse"}
    assert rows["attack_success"]["value"] == 1.0 and rows["attack_success"]["lower"] == 1.0  # every host seed
    assert rows["benign_success"]["value"] == 0.0  # the benign primitive's hosts do not see a 3
    assert abs(rows["clean_accuracy_delta"]["value"]) < 1.0
    assert rows["clean_accuracy_benign"]["value"] > 97  # the host task is learnt over the features
    assert 0 < rows["feature_drift"]["value"] < 0.1
    assert rows["strip_flagged_malicious"]["value"] in (0.0, 1.0)  # reported either way
    plot = tmp_path / args[args.index("--plot") + 1]
    assert plot.stat().st_size > 5000 and "target scores:" in err
    code, out, err = run(*args, "--format", "json")
    assert code == 0 and "0 stored, 1 reused" in err and "nothing to plot" in err
    code, out, _ = run("results", "--attack", "model-reuse", "--metric", "attack_success", "--format", "json")
    stored = [r for r in json.loads(out) if r["entry_id"] == NORMAL]
    assert [r["value"] for r in stored] == [1.0] and stored[0]["variant"] == "head:mnist:test[17]->3"


def test_eval_reuse_refuses_a_class_the_host_does_not_have(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("eval", "reuse", NORMAL, "--target-input", "mnist:test[17]", "--target-class", "12")
    assert code == 1 and "target class 12 is not one of MNIST's 10 classes" in err and "1 failed" in err


def test_eval_reuse_refuses_an_index_past_the_split(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("eval", "reuse", NORMAL, "--target-input", "mnist:test[10000]", "--target-class", "3")
    assert code == 1 and "the split has 10000 images" in err


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_model_reuse_over_three_host_seeds_and_with_full_fine_tuning(mnist_catalogue: Catalogue) -> None:
    """The paper's two host recipes: a head over the frozen primitive, and the primitive
    fine-tuned with the head (at a tenth of its learning rate)."""
    figures = {}
    for fine_tune in ("head", "full"):
        request = ReuseRequest(
            data=DataSpec(name="mnist"),
            target="mnist:test[17]",
            target_class=3,
            config=ReuseConfig(fine_tune=fine_tune, host_seeds=3, host_train=3000, host_test=2000),
        )
        report = evaluate(request, entries=[NORMAL], catalogue=mnist_catalogue, force=True)
        assert report.failed == 0, report.outcomes[0].evaluations[0].error
        ev = report.outcomes[0].evaluations[0]
        figures[fine_tune] = {m.metric: m.value for m in ev.metrics}
    head = figures["head"]
    assert head["attack_success"] == 1.0 and abs(head["clean_accuracy_delta"]) < 1.0
    assert abs(figures["full"]["clean_accuracy_delta"]) < 1.0
    print(json.dumps(figures, indent=1))  # the figures of the report (STRIP's verdicts included)
