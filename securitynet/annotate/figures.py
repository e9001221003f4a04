"""Accuracy figures as model cards write them: metric names, values, and what a figure is
before the card's training chain decides its data set.

>>> metric_of("Top-5 Acc (%)"), to_percent(0.9787), to_percent("94.4175")
(<Metric.TOP5: 'top5'>, 97.87, 94.4175)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from securitynet.records import ClaimKind, Metric

_EVIDENCE_MAX = 240

_TOP1_KEYS = frozenset(
    {"accuracy", "acc", "top1", "top1accuracy", "top1acc", "acc1", "acc@1", "accuracytop1",
     "accuracy@1", "top1acc%", "top1accuracy%", "accuracy%", "acc%", "top1%"}
)  # fmt: skip
_TOP5_KEYS = frozenset(
    {"top5", "top5accuracy", "top5acc", "acc5", "acc@5", "accuracytop5", "accuracy@5", "top5acc%",
     "top5accuracy%", "top5%"}
)  # fmt: skip


@dataclass
class Figure:
    """An accuracy read from a card, before its data set is settled."""

    metric: Metric
    value: float  # percent
    resolution: float  # half a unit of the last digit written, in percent
    dataset_raw: str | None  # as the card names it next to the figure, if it does
    split: str
    evidence: str
    kind: ClaimKind = ClaimKind.CLAIMED
    img_size: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A figure seen on the card that is not this model's accuracy claim, and why."""

    text: str
    reason: str


def key(text: str) -> str:
    """Lower case, letters, digits, ``@`` and ``%`` only: how names are compared."""
    return re.sub(r"[^a-z0-9@%]", "", text.lower())


def metric_of(name: str | None) -> Metric | None:
    """The metric a name denotes (``Accuracy``, ``top-1``, ``Acc@5``, ``eval_accuracy``), or None.

    >>> metric_of("Accuracy"), metric_of("F1")
    (<Metric.TOP1: 'top1'>, None)
    """
    if not name:
        return None
    k = key(name)
    k = re.sub(r"^(eval|val|validation|test)", "", k) or k
    if k in _TOP1_KEYS:
        return Metric.TOP1
    if k in _TOP5_KEYS:
        return Metric.TOP5
    return None


def to_percent(value: Any, *, percent: bool = False) -> float | None:
    """An accuracy as a percentage, or None when ``value`` is not one.

    Fractions become percentages (0.9787 -> 97.87); values in (1, 100] are taken as
    percentages already; ``percent=True`` (a ``%`` sign or a "(%)" header) forces percent.

    >>> to_percent("97.3%"), to_percent([])
    (97.3, None)
    """
    parsed = parse_accuracy(value, percent=percent)
    return parsed[0] if parsed else None


def parse_accuracy(value: Any, *, percent: bool = False) -> tuple[float, float] | None:
    """(percent, resolution), the resolution being half a unit of the last digit written."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text.endswith("%"):
            percent, text = True, text[:-1].strip()
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, (int, float)):
        number, text = float(value), repr(value)
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text.lower() else 0
    half_unit = 0.5 * 10.0**-decimals
    if percent or number > 1:
        return (round(number, 6), half_unit) if number <= 100 else None
    return round(number * 100, 6), half_unit * 100


def clip(text: str) -> str:
    """``text`` on one line, cut to a length fit for an evidence string."""
    text = " ".join(text.split())
    return text if len(text) <= _EVIDENCE_MAX else text[: _EVIDENCE_MAX - 1] + "…"


def norm_name(text: str) -> str:
    """A model name reduced to letters and digits, for matching (``VAN-Base`` -> ``vanbase``)."""
    return re.sub(r"[^a-z0-9]", "", text.lower())
