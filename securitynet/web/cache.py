"""What the web view keeps between requests: answers (facet counts, figures) keyed by what
was asked and by the catalogue's state, so nothing stale is ever served.

:func:`catalogue_state` is a handful of ``max()`` look-ups on primary keys (no scan, at any
size) that change whenever a sync, an import, an evaluation or an edit writes rows; a
server over a catalogue that another process writes sees the change on its next request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from securitynet.catalogue.models import (
    AccuracyClaimRow,
    EntryDataset,
    Evaluation,
    Fact,
    SyncRun,
    WeightFile,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def catalogue_state(session: Session) -> tuple[Any, ...]:
    """A cheap token that changes when the catalogue's content does."""
    return tuple(
        session.execute(
            select(
                select(func.max(SyncRun.id)).scalar_subquery(),
                select(func.max(SyncRun.finished_at)).scalar_subquery(),
                select(func.max(Evaluation.id)).scalar_subquery(),
                select(func.max(AccuracyClaimRow.id)).scalar_subquery(),
                select(func.max(EntryDataset.id)).scalar_subquery(),
                select(func.max(Fact.id)).scalar_subquery(),
                select(func.max(WeightFile.id)).scalar_subquery(),
            )
        ).one()
    )


class StateCache:
    """The last ``size`` answers, least recently used dropped first; thread-safe."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.computed = 0  # answers put (each computed, not served from here)

    def get(self, key: Any) -> Any | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self.computed += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
