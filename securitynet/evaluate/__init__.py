"""The evaluation harness: entries x attacks -> results stored in the catalogue, in this
process or on Ray. See :mod:`securitynet.evaluate.harness`."""

from __future__ import annotations

from securitynet.evaluate.executors import InProcessExecutor, RayExecutor, make_executor
from securitynet.evaluate.harness import (
    BatchReport,
    evaluate,
    list_failures,
    plot_outcomes,
    select_entries,
)
from securitynet.evaluate.reuse import ReuseRequest, TargetInput, plot_reuse_outcomes
from securitynet.evaluate.spec import AccuracyRequest, DataSpec, EntryOutcome, MembershipRequest
from securitynet.evaluate.stealing import StealingRequest

__all__ = [
    "AccuracyRequest",
    "BatchReport",
    "DataSpec",
    "EntryOutcome",
    "InProcessExecutor",
    "MembershipRequest",
    "RayExecutor",
    "ReuseRequest",
    "StealingRequest",
    "TargetInput",
    "evaluate",
    "list_failures",
    "make_executor",
    "plot_outcomes",
    "plot_reuse_outcomes",
    "select_entries",
]
