"""Text search (``search(text=...)``, the browse page's ``q``, ``list --search``): a literal,
case-insensitive substring of the id or the architecture, answered from a trigram index."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from securitynet.catalogue import queries
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.lite import LiteCatalogue, open_lite
from securitynet.catalogue.models import Entry
from securitynet.catalogue.queries import EntryFilter


def _ids(cat: Catalogue, query: str) -> set[str]:
    return {e.id for e in cat.search(text=query, include_removed=True, include_shared_weights=True)}


def _lite_ids(cat: Catalogue, query: str) -> set[str] | None:
    with open_lite(cat.url) as lite:
        if lite is None:
            return None
        assert isinstance(lite, LiteCatalogue)
        found = lite.search({"text": query, "include_removed": True, "include_shared_weights": True}, sort="id", descending=False, limit=None)
    return {row["id"] for row in found}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("resnet50", {"torchvision:resnet50.IMAGENET1K_V1", "timm:resnet50.a1_in1k"}),
        ("RESNET50.A1", {"timm:resnet50.a1_in1k"}),  # any case
        ("patch16_224", {"timm:vit_base_patch16_224.augreg_in21k_ft_in1k"}),  # _ is a character
        ("patch16%224", set()),  # and so is %
        ("huge_patch14", {"timm:vit_huge_patch14_clip_224.laion2b"}),  # in the architecture too
        ("20", {"imgclsmob:resnet20_cifar10"}),  # shorter than a trigram: read, not indexed
        ('a"b', set()),  # a quote cannot break out of the phrase
    ],
)
def test_search_is_a_literal_substring(catalogue: Catalogue, query: str, expected: set[str]) -> None:
    found = _ids(catalogue, query)
    assert expected <= found if query == "20" else found == expected
    # every id found contains the text, whatever the index said
    with catalogue.session() as s:
        rows = s.execute(select(Entry.id, Entry.architecture).where(Entry.id.in_(found))).all()
    assert all(query.lower() in f"{i} {a}".lower() for i, a in rows)
    lite = _lite_ids(catalogue, query)
    assert lite is None or lite == found


def test_the_index_follows_every_write(catalogue: Catalogue) -> None:
    with catalogue.engine.begin() as conn:
        conn.execute(text("UPDATE entry SET architecture = 'zebranet_tiny' WHERE id = 'imgclsmob:resnet20_cifar10'"))
    assert _ids(catalogue, "zebranet") == {"imgclsmob:resnet20_cifar10"}
    assert "imgclsmob:resnet20_cifar10" in _ids(catalogue, "resnet20")  # still in its id
    with catalogue.engine.begin() as conn:
        conn.execute(text("DELETE FROM entry WHERE id = 'imgclsmob:resnet20_cifar10'"))
    assert _ids(catalogue, "zebranet") == set()


def test_a_search_reads_the_index_not_every_entry(catalogue: Catalogue) -> None:
    flt = EntryFilter(text="resnet50", include_removed=True, include_shared_weights=True, include_test_nets=True)
    stmt = queries.search_statement(flt, sort=None)
    with catalogue.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(r) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            # the index names the rows; each is then read by its rowid, not by a scan
            assert "entry_search VIRTUAL TABLE" in plan and "SCAN entry'" not in plan
            assert "SEARCH entry USING INTEGER PRIMARY KEY" in plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a few rows: a scan would win
            compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(r) for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "ix_entry_search_id" in plan and "ix_entry_search_architecture" in plan


def test_a_narrow_search_is_looked_up_once_and_answers_the_same(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    from securitynet.catalogue import facets

    flt = EntryFilter(text="resnet")
    with catalogue.session() as s:
        resolved = queries.resolve_text(s, flt)
        # the ids the text alone matches (the other filters still apply, and each facet is
        # counted without its own)
        everything = {"include_removed": True, "include_shared_weights": True, "include_test_nets": True}
        assert resolved.text is None and resolved.among == {e.id for e in catalogue.search(text="resnet", **everything)}
        assert queries.search(s, resolved) == queries.search(s, flt)
        assert facets.count_facets(s, resolved, list(facets.FACETS), limit=50) == facets.count_facets(
            s, flt, list(facets.FACETS), limit=50
        )
        monkeypatch.setattr(queries, "RESOLVED_TEXT", 1)  # broader than that: left as asked
        assert queries.resolve_text(s, flt) == flt


def test_a_search_keeps_the_other_filters(catalogue: Catalogue) -> None:
    # the removed entry matches the text; the default filter leaves it out
    assert "timm:resnet18.gone_in1k" in _ids(catalogue, "resnet18")
    assert "timm:resnet18.gone_in1k" not in {e.id for e in catalogue.search(text="resnet18")}
    assert {e.dataset for e in catalogue.search(text="resnet", dataset="CIFAR-10")} == {"CIFAR-10"}


def test_without_the_index_a_search_reads_every_entry_and_finds_the_same(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite without FTS5's trigram tokenizer gets no index from the migration."""
    from securitynet.catalogue import textsearch

    if catalogue.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's index (PostgreSQL's planner picks its own)")
    indexed = {q: _ids(catalogue, q) for q in ("resnet50", "patch16_224", "20")}
    monkeypatch.setattr(catalogue.engine.dialect, textsearch.DIALECT_FLAG, False)
    assert {q: _ids(catalogue, q) for q in indexed} == indexed
    stmt = queries.search_statement(EntryFilter(text="resnet50"), sort=None)
    assert "entry_search" not in str(stmt.compile(catalogue.engine))
    like, args = textsearch.sqlite_match("resnet50", index=False)
    assert "entry_search" not in like and args == ["%resnet50%", "%resnet50%"]
