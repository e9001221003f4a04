"""What the harness shares between the entries of a batch: the data set is loaded once
(and put in Ray's object store once), a data set that does not load still fails each entry
on its own, and each task's torch uses its CPU share of threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import securitynet.evaluate.tasks as tasks
from securitynet.attacks.membership.run import MembershipConfig
from securitynet.catalogue.api import Catalogue
from securitynet.errors import ConfigurationError
from securitynet.evaluate import DataSpec, MembershipRequest, RayExecutor, evaluate
from securitynet.evaluate.executors import run_with_threads, share_arguments
from securitynet.evaluate.tasks import load_membership_sets, membership_digest, membership_protocol
from tests.evaluate.conftest import NORMAL, OVERFITTED


def _request(data: DataSpec | None = None) -> MembershipRequest:
    return MembershipRequest(
        data=data or DataSpec(name="mnist"), members="train[:200]", nonmembers="test[:200]",
        config=MembershipConfig(attacks=["confidence", "entropy"], bootstrap=20),
    )


def test_a_batch_loads_its_data_once_and_gets_the_figures_of_loading_it_per_entry(
    mnist_catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real = tasks.load_dataset

    def counting(name: str, split: str, **kw: Any) -> Any:
        loads.append(split)
        return real(name, split, **kw)

    monkeypatch.setattr(tasks, "load_dataset", counting)
    request = _request()
    report = evaluate(request, entries=[OVERFITTED, NORMAL], catalogue=mnist_catalogue, force=True)
    assert report.failed == 0 and report.stored == 4
    assert sorted(loads) == ["test", "train"]  # once for the batch, not once per entry

    loads.clear()  # one entry on its own, loading its data itself
    record = mnist_catalogue.get(NORMAL)
    protocol, _, _ = membership_protocol(request)
    digests = {v: membership_digest(record, request, protocol, v) for v in request.config.attacks}
    alone = tasks.run_membership_task(record, request, digests, mnist_catalogue.settings)
    assert sorted(loads) == ["test", "train"]
    batch = next(o for o in report.outcomes if o.entry_id == NORMAL)
    assert {ev.variant: ev.metric("auc") for ev in alone.evaluations} == {
        ev.variant: ev.metric("auc") for ev in batch.evaluations
    }


def test_data_that_does_not_load_fails_each_entry_and_the_batch_goes_on(
    mnist_catalogue: Catalogue, tmp_path: Path
) -> None:
    request = _request(DataSpec(name="mnist", data_dir=tmp_path))  # an empty folder
    assert load_membership_sets(request, mnist_catalogue.settings) is None
    report = evaluate(request, entries=[OVERFITTED, NORMAL], catalogue=mnist_catalogue, force=True)
    assert report.failed == 4 and {o.entry_id for o in report.outcomes} == {OVERFITTED, NORMAL}
    assert all("DatasetNotFoundError" in (ev.error or "") for o in report.outcomes for ev in o.evaluations)


def test_arguments_several_tasks_share_are_put_once() -> None:
    big, request, puts = [0] * 1000, {"kind": "mia"}, []

    def put(obj: object) -> str:
        puts.append(obj)
        return f"ref{len(puts)}"

    items = [("a", request, big, None), ("b", request, big, None), ("c", {"kind": "mia"}, big, None)]
    shared = share_arguments(items, put)
    assert puts == [request, big]  # each shared object once; the equal-but-other dict is not shared
    assert shared == [("a", "ref1", "ref2", None), ("b", "ref1", "ref2", None), ("c", {"kind": "mia"}, "ref2", None)]
    assert share_arguments([("a", big)], put) == [("a", big)] and len(puts) == 2


def test_a_task_runs_with_its_cpu_share_of_torch_threads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert run_with_threads(lambda x: (x, torch.get_num_threads()), 1, "entry") == ("entry", 1)
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigurationError):
        RayExecutor(cpus_per_task=0)
