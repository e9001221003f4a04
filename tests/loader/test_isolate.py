"""The isolated pool: a crash, a runaway, a memory bomb or an exception costs one input only."""

from __future__ import annotations

import time

import pytest

from securitynet.errors import ConfigurationError, LoaderError
from securitynet.loader.isolate import (
    CRASHED,
    ERROR,
    MEMORY_LIMIT,
    TIME_LIMIT,
    IsolatedPool,
    Limits,
    rss_bytes,
)

TASK = "tests.loader.isolated_tasks:run"
MIB = 1024 * 1024


def _run(items: list[tuple[str, int]], *, workers: int = 1, **limits: float) -> list:
    pool = IsolatedPool(TASK, workers=workers)
    outcomes = list(pool.map(items, limits=lambda _item: Limits(**limits)))
    assert sorted(o.index for o in outcomes) == list(range(len(items)))  # one each, no more
    return sorted(outcomes, key=lambda o: o.index)


def test_every_input_gets_its_own_outcome_whatever_the_others_do() -> None:
    items = [
        ("ok", 1),
        ("segfault", 0),
        ("ok", 2),
        ("sleep", 60),
        ("allocate", 512 * MIB),
        ("touch-shared", 256 * MIB),
        ("raise", 0),
        ("exit", 3),
        ("ok", 3),
    ]
    started = time.monotonic()
    out = _run(items, seconds=3, memory=64 * MIB)
    assert time.monotonic() - started < 60
    assert [o.failure for o in out] == [
        None,
        CRASHED,
        None,
        TIME_LIMIT,
        MEMORY_LIMIT,
        MEMORY_LIMIT,
        ERROR,
        CRASHED,
        None,
    ]
    assert [o.value[:2] for o in out if o.ok] == [("ok", 1), ("ok", 2), ("ok", 3)]
    assert "SIGSEGV" in out[1].detail
    assert "3 s" in out[3].detail and 3 <= out[3].seconds < 20
    assert "RecursionError" in out[6].detail
    assert "status 3" in out[7].detail
    # the worker that ran the first input died with the segfault: a fresh one ran the next
    assert out[0].value[2] != out[2].value[2]


def test_the_rss_watchdog_stops_what_rlimit_data_does_not_count() -> None:
    (out,) = _run([("touch-shared", 256 * MIB)], seconds=30, memory=64 * MIB)
    assert out.failure == MEMORY_LIMIT
    assert "above the limit of 64 MiB" in (out.detail or "")
    assert out.seconds < 20


def test_rlimit_data_refuses_a_private_allocation_before_it_is_touched() -> None:
    (out,) = _run([("allocate", 4096 * MIB)], seconds=30, memory=64 * MIB)
    assert out.failure == MEMORY_LIMIT
    assert out.detail == "an allocation failed at the memory limit"


def test_allocations_within_the_budget_are_fine() -> None:
    (out,) = _run([("allocate", 16 * MIB)], seconds=30, memory=128 * MIB)
    assert out.ok and out.value[0] == "allocate"


def test_a_worker_serves_many_inputs_one_start_each() -> None:
    out = _run([("ok", i) for i in range(8)], workers=2)
    pids = {o.value[2] for o in out}
    assert len(pids) <= 2  # not one interpreter (one torch import) per input


def test_the_warm_up_runs_in_the_worker_before_the_first_task() -> None:
    pool = IsolatedPool(
        "tests.loader.isolated_tasks:run_warm", warm_up="tests.loader.isolated_tasks:warm_up"
    )
    assert [o.value for o in pool.map([("ok", 1)])] == ["1"]


def test_a_worker_that_cannot_start_is_an_error_not_a_hang() -> None:
    pool = IsolatedPool("tests.loader.no_such_module:run")
    with pytest.raises(LoaderError, match="could not start"):
        list(pool.map([("ok", 1)]))


def test_no_inputs_start_no_workers() -> None:
    assert list(IsolatedPool("tests.loader.no_such_module:run").map([])) == []


@pytest.mark.parametrize(("seconds", "memory"), [(0, MIB), (1, 0), (-1, MIB)])
def test_limits_must_be_positive(seconds: float, memory: int) -> None:
    with pytest.raises(ConfigurationError):
        Limits(seconds=seconds, memory=memory)


def test_rss_of_a_process_that_does_not_exist() -> None:
    assert rss_bytes(2**22 + 12345) is None
