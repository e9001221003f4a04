"""The evaluation harness: entries x attacks -> results stored in the catalogue, in this
process or on Ray. See :mod:`securitynet.evaluate.harness`."""

from __future__ import annotations

from securitynet.evaluate.backdoor import BackdoorRequest, PatchTrigger, plot_backdoor
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
from securitynet.evaluate.stealing import StealingRequest, budget_curves, plot_stealing

__all__ = [
    "AccuracyRequest",
    "BackdoorRequest",
    "BatchReport",
    "DataSpec",
    "EntryOutcome",
    "InProcessExecutor",
    "MembershipRequest",
    "PatchTrigger",
    "RayExecutor",
    "ReuseRequest",
    "StealingRequest",
    "TargetInput",
    "budget_curves",
    "evaluate",
    "list_failures",
    "make_executor",
    "plot_backdoor",
    "plot_outcomes",
    "plot_reuse_outcomes",
    "plot_stealing",
    "select_entries",
]
