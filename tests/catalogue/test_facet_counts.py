"""Stored facet counts (``facet_count``): the same answers as counting the entries, never
stale, whoever writes."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from securitynet.catalogue import facets, queries
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.facet_table import counts_are_fresh
from securitynet.catalogue.queries import EntryFilter
from securitynet.records import DatasetLink, EntryRecord, Stage

ALL = list(facets.FACETS)


def _record(entry_id: str, chain: list[tuple[str, Stage]], **fields: object) -> EntryRecord:
    return EntryRecord(
        id=entry_id,
        architecture="convnext_tiny",
        family="convnext",
        datasets=[DatasetLink(dataset=d, stage=s, source="hf", evidence="card") for d, s in chain],
        **fields,  # type: ignore[arg-type]
    )


#: Pre-training chains with names a stranger could write: digits and colons, which a key
#: that only joined the names would confuse ({"1:a"} and {"1", "a"}).
PRETRAINED = [
    _record("hf:a/two-stages", [("LAION-2B", Stage.PRETRAIN), ("ImageNet-21k", Stage.PRETRAIN), ("ImageNet-1k", Stage.TRAIN)], input_size=288, licence="mit"),
    _record("hf:a/one-stage", [("ImageNet-21k", Stage.PRETRAIN), ("CIFAR-10", Stage.TRAIN)], input_size=384, task="image-classification"),
    _record("hf:a/colon-name", [("1:a", Stage.PRETRAIN), ("CIFAR-10", Stage.TRAIN)]),
    _record("hf:a/two-names", [("1", Stage.PRETRAIN), ("a", Stage.PRETRAIN), ("CIFAR-10", Stage.TRAIN)]),
    _record("hf:a/zero-shot", [("WebLI", Stage.PRETRAIN)], task="zero-shot-image-classification"),
]  # fmt: skip


@pytest.fixture
def pretrained(catalogue: Catalogue) -> Catalogue:
    catalogue.add(PRETRAINED, origin="hf")
    return catalogue


def _counted(session: Session, flt: EntryFilter, names: list[str]) -> facets.FacetCounts:
    """The counts as counted over the entries themselves."""
    total = queries.count(session, flt)
    return facets.FacetCounts(
        total, {f: facets.facet_values(session, flt, f, limit=50) for f in names}
    )


FILTERS = [
    EntryFilter(),
    EntryFilter(dataset="CIFAR-10"),
    EntryFilter(dataset="cifar10", family="RESNET"),
    EntryFilter(source="timm", licence="Apache-2.0"),
    EntryFilter(pretrain="ImageNet-21k"),
    EntryFilter(pretrain="1:a"),
    EntryFilter(pretrain="a", dataset="CIFAR-10"),
    EntryFilter(task="zero-shot-image-classification"),
    EntryFilter(min_input_size=100, max_input_size=300),
    EntryFilter(include_removed=True, include_shared_weights=True, include_test_nets=True),
    EntryFilter(dataset="no such data set"),
]


@pytest.mark.parametrize(
    "flt",
    FILTERS,
    ids=lambda f: (
        ",".join(f"{k}={v}" for k, v in dataclasses.asdict(f).items() if v not in (None, False))
        or "all"
    ),
)
def test_stored_counts_equal_counting_the_entries(pretrained: Catalogue, flt: EntryFilter) -> None:
    with pretrained.session() as s:
        stored = facets.count_facets(s, flt, ALL, limit=50)
        counted = _counted(s, flt, ALL)
    assert stored.stored
    assert (stored.total, stored.facets) == (counted.total, counted.facets)


def test_pretraining_data_is_a_set_counted_once_per_data_set(pretrained: Catalogue) -> None:
    with pretrained.session() as s:
        found = dict(
            facets.count_facets(s, EntryFilter(), ["pretrain"], limit=50).facets["pretrain"]
        )
    # the sample's ViT and two of the added entries pre-trained on ImageNet-21k
    assert found["ImageNet-21k"] == 3
    assert found["LAION-2B"] == 1
    # names with a colon and digits stay apart from the names that would spell them joined
    assert (found["1:a"], found["1"], found["a"]) == (1, 1, 1)
    assert {e.id for e in pretrained.search(pretrain="1:a")} == {"hf:a/colon-name"}
    assert {e.id for e in pretrained.search(pretrain="a")} == {"hf:a/two-names"}
    assert {e.id for e in pretrained.search(pretrain="ImageNet-21k", dataset="CIFAR-10")} == {
        "hf:a/one-stage"
    }


def test_a_write_by_hand_marks_the_counts_stale_and_a_refresh_makes_them_current(
    pretrained: Catalogue,
) -> None:
    with pretrained.engine.begin() as conn:
        assert counts_are_fresh(conn)
        conn.execute(
            text("UPDATE entry SET family = 'hand-edited' WHERE id = 'timm:resnet50.a1_in1k'")
        )
        assert not counts_are_fresh(conn)
    with pretrained.session() as s:
        stale = facets.count_facets(s, EntryFilter(), ["family"], limit=50)
    # the entries are counted instead: the edit shows at once
    assert not stale.stored and ("hand-edited", 1) in stale.facets["family"]
    assert pretrained.refresh_facet_counts(only_if_stale=True) > 0
    with pretrained.session() as s:
        fresh = facets.count_facets(s, EntryFilter(), ["family"], limit=50)
    assert fresh.stored and fresh.facets == stale.facets
    assert pretrained.refresh_facet_counts(only_if_stale=True) == 0.0


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM entry WHERE id = 'hf:a/one-stage'",
        "INSERT INTO entry_dataset (entry_id, dataset, stage, position, source, origin, recorded_at) VALUES ('hf:a/zero-shot', 'ImageNet-1k', 'pretrain', 9, 'hand', 'hand', CURRENT_TIMESTAMP)",
        "UPDATE entry SET removed_upstream = (1 = 1) WHERE id = 'hf:a/two-stages'",
    ],
)
def test_every_kind_of_write_marks_the_counts_stale(pretrained: Catalogue, statement: str) -> None:
    with pretrained.engine.begin() as conn:
        conn.execute(text(statement))
        assert not counts_are_fresh(conn)
    with pretrained.session() as s:
        counted = facets.count_facets(s, EntryFilter(), ALL, limit=50)
    pretrained.refresh_facet_counts()
    with pretrained.session() as s:
        stored = facets.count_facets(s, EntryFilter(), ALL, limit=50)
    assert stored.stored and (stored.total, stored.facets) == (counted.total, counted.facets)


def test_a_write_that_changes_no_counted_column_keeps_them(pretrained: Catalogue) -> None:
    with pretrained.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE entry SET top1 = 1.5, last_seen = CURRENT_TIMESTAMP WHERE id = 'hf:a/one-stage'"
            )
        )
        assert counts_are_fresh(conn)


def test_the_sync_path_refreshes_what_a_no_op_write_made_stale(pretrained: Catalogue) -> None:
    with pretrained.engine.begin() as conn:
        conn.execute(text("UPDATE entry SET family = family WHERE id = 'no such entry'"))
    pretrained.add([], origin="hf")  # nothing added or updated
    with pretrained.engine.connect() as conn:
        assert counts_are_fresh(conn)


def test_every_facet_filter_combination_agrees(pretrained: Catalogue) -> None:
    values = {
        "dataset": ["CIFAR-10", "ImageNet-1k"],
        "source": ["hf", "timm"],
        "pretrain": ["ImageNet-21k"],
        "family": ["resnet"],
    }
    names = list(values)
    with pretrained.session() as s:
        for r in range(1, len(names) + 1):
            for chosen in itertools.combinations(names, r):
                for picked in itertools.product(*(values[n] for n in chosen)):
                    flt = EntryFilter(**dict(zip(chosen, picked, strict=True)))
                    stored = facets.count_facets(s, flt, ALL, limit=50)
                    counted = _counted(s, flt, ALL)
                    assert (stored.total, stored.facets) == (counted.total, counted.facets), flt


def test_the_entry_row_keeps_its_pretraining_key(pretrained: Catalogue) -> None:
    def key() -> str | None:
        with pretrained.engine.connect() as conn:
            return conn.execute(text("SELECT pretrain FROM entry WHERE id = 'hf:a/two-stages'")).scalar()

    assert key() == "12:ImageNet-21k8:LAION-2B"  # names in order, each with its length
    with pretrained.engine.begin() as conn:
        conn.execute(text("DELETE FROM entry_dataset WHERE entry_id = 'hf:a/two-stages' AND dataset = 'LAION-2B'"))
    assert key() == "12:ImageNet-21k"
    with pretrained.engine.begin() as conn:
        conn.execute(text("UPDATE entry_dataset SET stage = 'train' WHERE entry_id = 'hf:a/two-stages'"))
    assert key() is None
    with pretrained.engine.connect() as conn:  # a train step is no pre-training
        assert conn.execute(text("SELECT pretrain FROM entry WHERE id = 'hf:a/colon-name'")).scalar() == "3:1:a"
