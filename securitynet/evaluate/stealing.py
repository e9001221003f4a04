"""One entry's model-stealing evaluation: the entry is the target, a data set's split is the
attacker's query pool, another split (the target's test data) scores the surrogate. One
stored evaluation per budget (variant ``<labels>_<budget>``, e.g. ``soft_1000``, or
``<labels>_<policy>_<budget>`` for an active policy, e.g. ``soft_kcenter_1000``) with the
median over seeds as value and the spread over seeds as its interval."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.stealing.knockoff import StealingConfig
from securitynet.data.sets import load_dataset, split_sizes
from securitynet.evaluate.spec import SOURCE, DataSpec, EntryOutcome, library_versions, over_seeds
from securitynet.evaluate.tasks import _failed, _load, dataset_label, weights_identity
from securitynet.records import EntryRecord, EvaluationRecord, MetricResult, config_digest

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import torch
    from torch import nn

    from securitynet.attacks.stealing.plot import BudgetPoint, PublicFigure
    from securitynet.evaluate.harness import BatchReport
    from securitynet.settings import Settings

#: The ``attack`` column of a stealing evaluation.
ATTACK = "model-stealing"


class StealingRequest(BaseModel):
    """Steal each entry: query with ``data``'s ``query_split``, score on its ``test_split``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "steal"
    data: DataSpec
    query_split: str = "train"
    test_split: str = "test"
    max_test: int | None = Field(default=None, gt=0, description="Score on a seeded sample.")
    config: StealingConfig = Field(default_factory=StealingConfig)
    #: The catalogue record of ``config.surrogate`` when that names an entry (``evaluate``
    #: looks it up; tasks never read the catalogue).
    surrogate_entry: EntryRecord | None = None

    def variants(self) -> dict[str, int]:
        """Variant name -> budget."""
        policy = "" if self.config.policy == "random" else f"{self.config.policy}_"
        return {f"{self.config.labels}_{policy}{b}": b for b in self.config.budgets}

    def variant_config(self, budget: int) -> dict[str, Any]:
        """The stored configuration of one budget: only the settings that shape its result
        (a random-policy run keeps the key it had before active policies existed)."""
        config = self.config.model_dump(mode="json", exclude={"budgets"})
        if self.config.labels != "topk":
            config.pop("top_k")
        if self.config.policy == "random":
            for key in ("policy", "round_size", "refine_epochs", "candidates", "arms"):
                config.pop(key)
        elif self.config.policy != "adaptive":
            config.pop("arms")
        return {
            **config,
            "budget": budget,
            "query_split": self.query_split,
            "test_split": self.test_split,
            "max_test": self.max_test,
        }


def stealing_digest(record: EntryRecord, request: StealingRequest, budget: int) -> str:
    return config_digest(
        {
            "kind": ATTACK,
            "weights": weights_identity(record),
            "dataset": dataset_label(request.data.name),
            "config": request.variant_config(budget),
            "versions": library_versions(),
        }
    )


def run_stealing_task(
    record: EntryRecord,
    request: StealingRequest,
    digests: dict[str, str],
    settings: Settings | None = None,
) -> EntryOutcome:
    """The budgets named in ``digests`` (variant -> config digest) against ``record``."""
    from securitynet.attacks.membership.query import NetQuery
    from securitynet.attacks.stealing.knockoff import run_stealing
    from securitynet.attacks.stealing.surrogates import build_surrogate

    data = request.data
    dataset = dataset_label(data.name)
    budgets = {v: b for v, b in request.variants().items() if v in digests}
    outcome = EntryOutcome(entry_id=record.id)
    started = time.perf_counter()
    try:
        split_sizes(data.name, settings=settings)  # an unknown data set fails before loading the net
        loaded = _load(record, data.device, settings)
        pool = load_dataset(data.name, request.query_split, data_dir=data.data_dir, settings=settings)
        test = load_dataset(data.name, request.test_split, data_dir=data.data_dir, settings=settings)
        test_idx = np.arange(len(test))
        if request.max_test is not None and request.max_test < len(test_idx):
            test_idx = np.sort(
                np.random.default_rng(request.config.seed).choice(
                    test_idx, request.max_test, replace=False
                )
            )

        def fetch(indices: np.ndarray) -> torch.Tensor:
            return fetch_from(pool, indices, loaded.transform)

        import torch

        test_x = fetch_from(test, test_idx, loaded.transform)
        test_y = torch.from_numpy(test.labels[test_idx])
        query = NetQuery(loaded.net, loaded.spec.output or "logits", data.device)
        config = request.config.model_copy(update={"budgets": sorted(budgets.values())})
        with torch.no_grad():
            classes = int(query.log_probs(test_x[:1]).shape[1])
        shape = tuple(test_x.shape[1:])

        def surrogate(seed: int) -> nn.Module:
            return build_surrogate(
                config.surrogate, shape, classes, seed=seed, entry=request.surrogate_entry, settings=settings
            )

        result = run_stealing(query, fetch, len(pool), test_x, test_y, config, surrogate=surrogate)
    except Exception as exc:  # the batch boundary: every asked budget is recorded as failed
        outcome.evaluations = [
            _failed(record.id, ATTACK, v, exc, dataset=dataset, digest=d) for v, d in digests.items()
        ]
        outcome.extra["seconds"] = time.perf_counter() - started
        return outcome
    versions = library_versions()
    protocol = {
        "dataset": dataset,
        "query_split": request.query_split,
        "test_split": request.test_split,
        "test_size": len(test_idx),
        "seeds": [request.config.seed + i for i in range(request.config.seeds)],
    }
    by_budget = {b.budget: b for b in result.budgets}
    for variant, budget in budgets.items():
        figures = by_budget[budget]
        outcome.evaluations.append(
            EvaluationRecord(
                attack=ATTACK,
                variant=variant,
                source=SOURCE,
                dataset=dataset,
                config=request.variant_config(budget),
                protocol=protocol,
                seed=request.config.seed,
                config_digest=digests[variant],
                versions=versions,
                device=data.device,
                duration_s=(result.query_seconds + result.train_seconds + result.select_seconds)
                / len(budgets),
                metrics=[
                    over_seeds("agreement", figures.median_agreement, figures.agreement),
                    over_seeds("accuracy", figures.median_accuracy, figures.accuracy),
                    MetricResult(metric="target_accuracy", value=result.target_accuracy),
                    MetricResult(metric="queries", value=float(budget)),
                ],
            )
        )
    outcome.extra = {
        "queries_per_second": result.queries_per_second,
        "select_seconds": result.select_seconds,
        "agreement": {b.budget: b.agreement for b in result.budgets},
    }
    return outcome


def fetch_from(images: Any, indices: np.ndarray, transform: Any, *, batch_size: int = 2048) -> torch.Tensor:
    """The preprocessed images at ``indices``, as one tensor."""
    import torch

    from securitynet.data.sets import iter_batches

    return torch.cat([x for x, _ in iter_batches(images, indices, transform, batch_size=batch_size)])


def budget_curves(report: BatchReport) -> dict[str, list[BudgetPoint]]:
    """The stealing figures of ``report`` (new or reused) as curves over budget: one per
    entry and setting (``<labels>[_<policy>]``), prefixed by the entry's file name when
    several entries are in the report."""
    from securitynet.attacks.stealing.plot import BudgetPoint

    curves: dict[str, list[BudgetPoint]] = {}
    single = len({o.entry_id for o in report.outcomes}) == 1
    for outcome in report.outcomes:
        for ev in outcome.evaluations:
            if ev.attack != ATTACK or ev.status != "ok":
                continue
            agreement, accuracy = _metric(ev, "agreement"), _metric(ev, "accuracy")
            budget = ev.metric("queries")
            if agreement is None or accuracy is None or budget is None:
                continue
            setting = (ev.variant or "").rsplit("_", 1)[0].replace("_", " ")
            name = setting if single else f"{outcome.entry_id.rsplit('/', 1)[-1]} {setting}"
            curves.setdefault(name, []).append(
                BudgetPoint(
                    budget=int(budget),
                    agreement=agreement.value,
                    accuracy=accuracy.value,
                    agreement_range=_range(agreement),
                    accuracy_range=_range(accuracy),
                )
            )
    return {k: sorted(v, key=lambda p: p.budget) for k, v in curves.items()}


def plot_stealing(
    report: BatchReport,
    path: Path,
    *,
    public: Sequence[PublicFigure] = (),
    public_label: str = "public",
) -> Path:
    """The agreement-against-budget figure of ``report`` (PNG, SVG or PDF by suffix)."""
    from securitynet.attacks.stealing.plot import plot_budget_curves

    curves = budget_curves(report)
    entries = {o.entry_id for o in report.outcomes}
    title = next(iter(entries)) if len(entries) == 1 else ""
    return plot_budget_curves(curves, path, public=public, public_label=public_label, title=title)


def _metric(ev: EvaluationRecord, name: str) -> MetricResult | None:
    return next((m for m in ev.metrics if m.metric == name), None)


def _range(m: MetricResult) -> tuple[float, float] | None:
    return (m.lower, m.upper) if m.lower is not None and m.upper is not None else None
