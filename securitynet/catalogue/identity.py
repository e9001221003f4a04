"""Weight identity: entries that load the very same weight file are one checkpoint.

Sources list one file under several names (timm's ``vit_large_patch14_clip_224.openai`` and
``vit_large_patch14_clip_quickgelu_224.openai`` both load
``hf://timm/vit_large_patch14_clip_224.openai/...``). Two entries share weights when their
weight files are the same: the same full sha256, or the same URL at the same revision. Of
each such group one entry stands for the checkpoint (the one whose name the file's URL
carries, else the shortest id); every other entry gets ``entry.same_weights_as`` pointing to
it and a ``fact`` row (origin ``identity``) saying why. Listings and statistics count each
checkpoint once by default.

Recomputed set-wise after every sync: links that no longer hold are cleared.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from securitynet.catalogue.models import Entry, Fact, WeightFile, utcnow

log = logging.getLogger(__name__)

ORIGIN = "identity"
SOURCE = "securitynet:weight-identity"
_CHUNK = 500


def _groups(rows: Iterable[tuple[str, str, str | None, str | None]]) -> list[tuple[list[str], str]]:
    """Connected groups of entries sharing a file key, each with the evidence it shares."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_of: dict[str, str] = {}
    why: dict[str, str] = {}
    for entry_id, url, revision, sha256 in rows:
        keys = [f"url {url}" + (f" @ {revision}" if revision else "")]
        if sha256:
            keys.append(f"sha256 {sha256}")
        for key in keys:
            other = first_of.setdefault(key, entry_id)
            if other != entry_id:
                root_a, root_b = find(other), find(entry_id)
                if root_a != root_b:
                    parent[root_b] = root_a
                why.setdefault(entry_id, key)
                why.setdefault(other, key)
    members: dict[str, list[str]] = defaultdict(list)
    for entry_id in why:
        members[find(entry_id)].append(entry_id)
    return [(sorted(ids), why[ids[0]]) for ids in members.values() if len(ids) > 1]


def _representative(ids: list[str], urls: dict[str, list[str]]) -> str:
    def named_in_url(eid: str) -> bool:
        name = eid.split(":", 1)[1]
        return any(f"/{name}/" in u or u.endswith(f"/{name}") for u in urls.get(eid, ()))

    return min(ids, key=lambda eid: (not named_in_url(eid), len(eid), eid))


def link_shared_weights(engine: Engine) -> int:
    """Set ``entry.same_weights_as`` over the whole catalogue; returns how many entries are
    linked to another."""
    with Session(engine) as session, session.begin():
        rows = session.execute(
            select(WeightFile.entry_id, WeightFile.url, WeightFile.revision, WeightFile.sha256)
            .join(Entry, Entry.id == WeightFile.entry_id)
            .where(WeightFile.role == "weights", Entry.removed_upstream.is_(False))
        ).all()
        urls: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            urls[r.entry_id].append(r.url)
        wanted: dict[str, tuple[str, str]] = {}  # entry -> (representative, evidence)
        for ids, evidence in _groups((r.entry_id, r.url, r.revision, r.sha256) for r in rows):
            keep = _representative(ids, urls)
            for eid in ids:
                if eid != keep:
                    wanted[eid] = (keep, evidence)
        current = {
            r.id: r.same_weights_as
            for r in session.execute(
                select(Entry.id, Entry.same_weights_as).where(Entry.same_weights_as.is_not(None))
            )
        }
        stale = [eid for eid, rep in current.items() if wanted.get(eid, (None,))[0] != rep]
        changed = [eid for eid, (rep, _) in wanted.items() if current.get(eid) != rep]
        for start in range(0, len(stale), _CHUNK):
            chunk = stale[start : start + _CHUNK]
            session.execute(update(Entry).where(Entry.id.in_(chunk)).values(same_weights_as=None))
            session.execute(delete(Fact).where(Fact.entry_id.in_(chunk), Fact.origin == ORIGIN))
        now = utcnow()
        for start in range(0, len(changed), _CHUNK):
            chunk = changed[start : start + _CHUNK]
            session.execute(
                update(Entry),
                [{"id": eid, "same_weights_as": wanted[eid][0]} for eid in chunk],
            )
            session.execute(delete(Fact).where(Fact.entry_id.in_(chunk), Fact.origin == ORIGIN))
            session.execute(
                insert(Fact),
                [
                    {
                        "entry_id": eid,
                        "key": "same_weights_as",
                        "value": wanted[eid][0],
                        "source": SOURCE,
                        "evidence": f"both load the same weight file ({wanted[eid][1]})",
                        "origin": ORIGIN,
                        "recorded_at": now,
                    }
                    for eid in chunk
                ],
            )
    if changed or stale:
        log.info("weight identity: %d entries linked, %d links cleared", len(changed), len(stale))
    return len(wanted)
