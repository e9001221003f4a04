"""The Ray executor on a local Ray cluster started by the test: the same figures as the
in-process executor, stored the same way. Marked slow (a Ray cluster takes a while to start
on two cores)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from securitynet.attacks.backdoor.strip import StripConfig
from securitynet.attacks.membership.run import MembershipConfig
from securitynet.attacks.stealing import StealingConfig
from securitynet.catalogue.api import Catalogue
from securitynet.cli.app import main
from securitynet.errors import ConfigurationError
from securitynet.evaluate import (
    BackdoorRequest,
    DataSpec,
    MembershipRequest,
    PatchTrigger,
    RayExecutor,
    StealingRequest,
    evaluate,
    make_executor,
)
from tests.evaluate.conftest import NORMAL, OVERFITTED, REPO

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_gives_the_in_process_figures(mnist_catalogue: Catalogue, local_ray: None) -> None:
    request = MembershipRequest(
        data=DataSpec(name="mnist"), members="train[:300]", nonmembers="test[:300]",
        config=MembershipConfig(attacks=["correctness", "confidence"], bootstrap=20),
    )
    local = evaluate(request, entries=[OVERFITTED, NORMAL], catalogue=mnist_catalogue, force=True)
    remote = evaluate(request, entries=[OVERFITTED, NORMAL], catalogue=mnist_catalogue, force=True, executor=RayExecutor())
    assert remote.executor == "ray" and remote.failed == 0 and remote.stored == 4

    def figures(report) -> dict:  # type: ignore[no-untyped-def]
        return {(o.entry_id, ev.variant): ev.metric("auc") for o in report.outcomes for ev in o.evaluations}

    assert figures(remote) == pytest.approx(figures(local))
    assert len(mnist_catalogue.results(entry_id=NORMAL, variant="confidence", metric="auc")) >= 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_cli_runs_a_where_selection_on_ray(
    mnist_catalogue: Catalogue, local_ray: None, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_HOME", str(mnist_catalogue.settings.home))
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    monkeypatch.setenv("SECURITYNET_DATA_DIR", str(shared_dir / "data"))
    runner = CliRunner()
    with runner.isolation() as (out, err, _mixed):
        code = 0
        try:
            main(["eval", "mia", "--where", "dataset = 'MNIST'", "--members", "train", "--nonmembers", "test",
                  "--max-samples", "300", "--attacks", "confidence", "--bootstrap", "10", "--executor", "ray",
                  "--format", "json"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        rows, errors = json.loads(out.getvalue().decode()), err.getvalue().decode()
    assert code == 0, errors
    # the five MNIST checkpoints (the Fashion-MNIST one is not selected)
    assert len({r["entry_id"] for r in rows}) == 5 and "ray executor" in errors


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stealing_runs_on_ray_with_a_catalogue_surrogate(mnist_catalogue: Catalogue, local_ray: None) -> None:
    """`eval steal --executor ray`: the surrogate entry's record travels with the task (Ray
    workers never read the catalogue), and the figures are the in-process ones."""
    request = StealingRequest(
        data=DataSpec(name="mnist"), max_test=500,
        config=StealingConfig(
            budgets=[100, 200], labels="hard", epochs=4, policy="uncertainty", round_size=100, candidates=1000,
            surrogate=f"{REPO}/stolen_models/attacker_surrogate_simple_cnn_1000samples.pt",
        ),
    )
    local = evaluate(request, entries=[NORMAL], catalogue=mnist_catalogue, force=True)
    remote = evaluate(request, entries=[NORMAL], catalogue=mnist_catalogue, force=True, executor=RayExecutor())
    assert remote.executor == "ray" and remote.failed == 0 and remote.stored == 2

    def figures(report) -> dict:  # type: ignore[no-untyped-def]
        return {ev.variant: ev.metric("agreement") for o in report.outcomes for ev in o.evaluations}

    assert set(figures(remote)) == {"hard_uncertainty_100", "hard_uncertainty_200"}
    # the same seeds and data; only float summation order may differ between processes
    assert figures(remote) == pytest.approx(figures(local), abs=2.0)


def test_executor_names() -> None:
    assert make_executor("local").name == "local" and make_executor("ray", address="auto").name == "ray"
    with pytest.raises(ConfigurationError):
        make_executor("dask")
    with pytest.raises(ConfigurationError):
        make_executor("local", address="ray://x:10001")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backdoor_detection_on_ray_gives_the_in_process_figures(mnist_catalogue: Catalogue, local_ray: None) -> None:
    request = BackdoorRequest(
        data=DataSpec(name="mnist"), method="strip", max_samples=150, trigger=PatchTrigger(size=3),
        strip=StripConfig(copies=8),
    )
    local = evaluate(request, entries=[NORMAL], catalogue=mnist_catalogue, force=True)
    remote = evaluate(request, entries=[NORMAL], catalogue=mnist_catalogue, force=True, executor=RayExecutor())
    assert remote.executor == "ray" and remote.failed == 0 and remote.stored == 1
    (got,), (want,) = remote.outcomes[0].evaluations, local.outcomes[0].evaluations
    assert {m.metric: m.value for m in got.metrics} == pytest.approx({m.metric: m.value for m in want.metrics})
    assert remote.outcomes[0].extra["strip"]["triggered"] == pytest.approx(local.outcomes[0].extra["strip"]["triggered"])
