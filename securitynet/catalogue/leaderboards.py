"""Leaderboards: entries ranked on one data set (top-1 per resolution) or by one attack's
figures (per metric and data set), with who said each figure.

    >>> with cat.session() as s:
    ...     list_boards(s)                               # which boards have rows
    ...     dataset_board(s, "CIFAR-10")                 # one section per resolution
    ...     attack_board(s, "mia")                       # one section per (metric, data set)

Rules:

- **Data-set boards** rank the entries that are catalogued (not removed upstream, not a
  library's test net, one entry per weight file) by their top-1 claims on that data set, one
  section per input resolution (``img_size``; a claim without one is "not stated"). Per
  entry and resolution the best *claimed* figure (the source's word) and the best
  *measured* one (ours or a named third party) stand side by side, each with its source and
  evidence; the rank is the measured figure where there is one. A training-split figure
  counts only where the entry states nothing else there (the rule of ``best_top1``).
- **Attack boards** read the figures of ``v_results`` (status ``ok``): per metric and data
  set, one row per entry and variant with **ours** (the newest figure our harness,
  source ``evaluate``, produced) beside the **published** one (another source's, such as
  ``securitynet-release``), and their difference where both exist. Variants are matched
  with ``_`` and ``-`` taken as the same (the release writes ``modified-entropy``, the
  harness ``modified_entropy``). Ranked largest first (the leakiest, the easiest to steal).
- Each section lists at most ``limit`` rows and says how many there were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from securitynet.annotate.datasets import dataset_name
from securitynet.catalogue.models import AccuracyClaimRow, Entry, Evaluation, EvaluationMetric
from securitynet.catalogue.queries import resolve_dataset
from securitynet.catalogue.results import ResultFilter, list_results
from securitynet.errors import NotFoundError
from securitynet.records import ClaimKind, Metric

#: The source of the figures our own harness produces.
OURS = "evaluate"
#: Rows listed per section.
LIMIT = 100


@dataclass
class DatasetRow:
    """One entry at one resolution on a data-set board."""

    entry_id: str
    img_size: int | None
    claimed: float | None = None
    claimed_source: str | None = None
    claimed_split: str | None = None
    claimed_evidence: str | None = None
    measured: float | None = None
    measured_source: str | None = None
    measured_split: str | None = None
    measured_evidence: str | None = None

    @property
    def rank_value(self) -> float:
        value = self.measured if self.measured is not None else self.claimed
        return value if value is not None else float("-inf")

    @property
    def ranked_by(self) -> str:
        return ClaimKind.MEASURED.value if self.measured is not None else ClaimKind.CLAIMED.value


@dataclass
class AttackRow:
    """One entry and variant on an attack board: our figure beside the published one."""

    entry_id: str
    variant: str | None
    ours: float | None = None
    ours_lower: float | None = None
    ours_upper: float | None = None
    published: float | None = None
    published_source: str | None = None

    @property
    def difference(self) -> float | None:
        if self.ours is None or self.published is None:
            return None
        return self.ours - self.published

    @property
    def rank_value(self) -> float:
        value = self.ours if self.ours is not None else self.published
        return value if value is not None else float("-inf")


@dataclass
class Section:
    """One ranked table of a board: a resolution, or an attack's metric on a data set."""

    title: str
    rows: list[Any] = field(default_factory=list)
    total: int = 0
    key: dict[str, Any] = field(default_factory=dict)


def _visible() -> list[Any]:
    return [
        Entry.removed_upstream.is_(False),
        Entry.test_net.is_(False),
        Entry.same_weights_as.is_(None),
    ]


def list_boards(session: Session) -> dict[str, list[dict[str, Any]]]:
    """The data sets with top-1 claims (entries with one, most first) and the attacks with
    figures (per metric and data set: entries, ours and published)."""
    entries = func.count(func.distinct(AccuracyClaimRow.entry_id)).label("entries")
    datasets = session.execute(
        select(AccuracyClaimRow.dataset, entries)
        .join(Entry, Entry.id == AccuracyClaimRow.entry_id)
        .where(AccuracyClaimRow.metric == Metric.TOP1, *_visible())
        .group_by(AccuracyClaimRow.dataset)
        .order_by(entries.desc(), AccuracyClaimRow.dataset)
    ).all()
    ours = func.sum(case((Evaluation.source == OURS, 1), else_=0))
    attacks = session.execute(
        select(
            Evaluation.attack,
            EvaluationMetric.metric,
            Evaluation.dataset,
            func.count(func.distinct(Evaluation.entry_id)).label("entries"),
            ours.label("ours"),
            func.count().label("figures"),
        )
        .join(EvaluationMetric, EvaluationMetric.evaluation_id == Evaluation.id)
        .join(Entry, Entry.id == Evaluation.entry_id)
        .where(Evaluation.status == "ok", Entry.removed_upstream.is_(False))
        .group_by(Evaluation.attack, EvaluationMetric.metric, Evaluation.dataset)
        .order_by(Evaluation.attack, EvaluationMetric.metric, Evaluation.dataset)
    ).all()
    return {
        "datasets": [{"dataset": d, "entries": int(n)} for d, n in datasets],
        "attacks": [
            {
                "attack": a,
                "metric": m,
                "dataset": d,
                "entries": int(n),
                "ours": int(o or 0),
                "published": int(f) - int(o or 0),
            }
            for a, m, d, n, o, f in attacks
        ],
    }


def dataset_board(session: Session, dataset: str, *, limit: int = LIMIT) -> list[Section]:
    """Top-1 on ``dataset`` per entry, one :class:`Section` per resolution (NotFoundError
    when no catalogued entry has a top-1 claim on it)."""
    name = resolve_dataset(dataset)
    rows = session.execute(
        select(
            AccuracyClaimRow.entry_id,
            AccuracyClaimRow.img_size,
            AccuracyClaimRow.kind,
            AccuracyClaimRow.split,
            AccuracyClaimRow.value,
            AccuracyClaimRow.source,
            AccuracyClaimRow.evidence,
        )
        .join(Entry, Entry.id == AccuracyClaimRow.entry_id)
        .where(
            func.lower(AccuracyClaimRow.dataset) == name.lower(),
            AccuracyClaimRow.metric == Metric.TOP1,
            *_visible(),
        )
        .order_by(AccuracyClaimRow.value.desc(), AccuracyClaimRow.id)
    ).all()
    if not rows:
        raise NotFoundError(
            f"no catalogued entry has a top-1 claim on {dataset!r}",
            hint="/leaderboards lists the data sets that have one.",
            dataset=dataset,
        )
    # per (entry, resolution, kind): held-out splits first, then best value (rows come best first)
    best: dict[tuple[str, int | None, str], Any] = {}
    for row in rows:
        key = (row.entry_id, row.img_size, ClaimKind(row.kind).value)
        held_out = row.split != "train"
        current = best.get(key)
        if current is None or (held_out and current.split == "train"):
            best[key] = row
    board: dict[tuple[str, int | None], DatasetRow] = {}
    for (entry_id, size, kind), row in best.items():
        item = board.setdefault((entry_id, size), DatasetRow(entry_id=entry_id, img_size=size))
        prefix = "measured" if kind == ClaimKind.MEASURED.value else "claimed"
        setattr(item, prefix, row.value)
        setattr(item, f"{prefix}_source", row.source)
        setattr(item, f"{prefix}_split", row.split)
        setattr(item, f"{prefix}_evidence", row.evidence)
    by_size: dict[int | None, list[DatasetRow]] = {}
    for item in board.values():
        by_size.setdefault(item.img_size, []).append(item)
    sections = []
    for size in sorted(by_size, key=lambda s: (s is None, s or 0)):
        ranked = sorted(by_size[size], key=lambda r: (-r.rank_value, r.entry_id))
        title = f"{size} × {size} px" if size is not None else "resolution not stated"
        sections.append(Section(title, ranked[:limit], len(ranked), {"img_size": size}))
    return sections


def _variant_key(variant: str | None) -> str | None:
    return variant.replace("_", "-").lower() if variant else variant


def attack_board(
    session: Session,
    attack: str,
    *,
    metric: str | None = None,
    dataset: str | None = None,
    limit: int = LIMIT,
) -> list[Section]:
    """``attack``'s figures, one :class:`Section` per (metric, data set), ours beside the
    published ones (NotFoundError when there is none)."""
    flt = ResultFilter(attack=attack, metric=metric, dataset=dataset_name(dataset) if dataset else None)
    results = list_results(session, flt)
    if not results:
        raise NotFoundError(
            f"no evaluation figures for attack {attack!r}"
            + (f" and metric {metric!r}" if metric else "")
            + (f" on {dataset!r}" if dataset else ""),
            hint="/leaderboards lists the attacks that have some.",
            attack=attack,
        )
    sections: dict[tuple[str, str | None], dict[tuple[str, str | None], AttackRow]] = {}
    # per row: the newest evaluation of ours, and of the first other source by name
    newest: dict[tuple[int, str], tuple[str, int]] = {}
    for r in results:
        rows = sections.setdefault((r.metric, r.dataset), {})
        key = (r.entry_id, _variant_key(r.variant))
        item = rows.setdefault(key, AttackRow(entry_id=r.entry_id, variant=r.variant))
        side = "ours" if r.source == OURS else "published"
        rank = (r.source, -r.evaluation_id)
        if (id(item), side) in newest and newest[(id(item), side)] <= rank:
            continue
        newest[(id(item), side)] = rank
        if side == "ours":
            item.ours, item.ours_lower, item.ours_upper = r.value, r.lower, r.upper
            item.variant = r.variant
        else:
            item.published, item.published_source = r.value, r.source
    out = []
    for (metric_name, data), rows in sorted(sections.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        ranked = sorted(rows.values(), key=lambda r: (-r.rank_value, r.entry_id, r.variant or ""))
        title = f"{metric_name} on {data}" if data else f"{metric_name} (data set not stated)"
        out.append(Section(title, ranked[:limit], len(ranked), {"metric": metric_name, "dataset": data}))
    return out


__all__ = [
    "LIMIT",
    "OURS",
    "AttackRow",
    "DatasetRow",
    "Section",
    "attack_board",
    "dataset_board",
    "list_boards",
]
