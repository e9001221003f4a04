"""Sync writes what scrapers yield: idempotent, incremental, interruption-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.ingest import sync_source
from securitynet.errors import EntryNotFoundError, InvalidQueryError, UpstreamError
from securitynet.records import EntryRecord, Stage
from securitynet.scrapers.base import SyncContext, Unchanged
from securitynet.settings import get_settings


def record(i: int, *, top1: float | None = None, params: int | None = None) -> EntryRecord:
    return EntryRecord(
        id=f"timm:net{i}.in21k_ft_in1k",
        architecture=f"net{i}",
        family="resnet" if i % 2 else "vit",
        params=params if params is not None else 1_000_000 + i,
        licence="apache-2.0",
        datasets=[
            {
                "dataset": "ImageNet-21k",
                "stage": "pretrain",
                "source": "timm",
                "evidence": "tag in21k",
            },
            {
                "dataset": "ImageNet-1k",
                "stage": "train",
                "source": "timm",
                "evidence": "tag ft_in1k",
            },
        ],
        claims=[
            {
                "dataset": "ImageNet-1k",
                "value": top1 if top1 is not None else 70.0 + i % 20,
                "img_size": 224,
                "source": "timm-results",
                "evidence": "results-imagenet.csv",
            },
            {"dataset": "ImageNet-1k", "value": 60.0, "img_size": 160, "source": "timm-results"},
        ],
        files=[{"url": f"hf://timm/net{i}/model.safetensors"}],
        evidence={"params": "results-imagenet.csv param_count"},
    )


class ListScraper:
    """A scraper over a list: the shape every real scraper has, with no upstream."""

    name = "timm"
    needs_network = False

    def __init__(
        self, items: list[EntryRecord | Unchanged], *, fail_after: int | None = None
    ) -> None:
        self.items, self.fail_after = items, fail_after
        self.contexts: list[SyncContext] = []

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        return None

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        self.contexts.append(ctx)
        for n, item in enumerate(self.items):
            if self.fail_after is not None and n == self.fail_after:
                raise UpstreamError("upstream went away")
            yield item


@pytest.fixture
def cat(catalogue_url: str) -> Iterator[Catalogue]:
    c = Catalogue(catalogue_url)
    yield c
    c.close()


def test_first_sync_adds_everything_and_keeps_provenance(cat: Catalogue) -> None:
    s = sync_source(
        cat.engine, ListScraper([record(i) for i in range(50)]), settings=get_settings()
    )
    assert (s.status, s.seen, s.added, s.updated, s.unchanged) == ("ok", 50, 50, 0, 0)
    e = cat.get("timm:net3.in21k_ft_in1k")
    assert e.dataset == "ImageNet-1k" and e.top1 == 73.0  # best claim on the final data set
    assert [d.stage for d in e.datasets] == [Stage.PRETRAIN, Stage.TRAIN]
    assert {(c.value, c.img_size, c.source) for c in e.claims} == {
        (73.0, 224, "timm-results"),
        (60.0, 160, "timm-results"),
    }
    params = [f for f in e.facts if f.key == "params"]
    assert params[0].source == "timm" and params[0].evidence == "results-imagenet.csv param_count"
    assert e.files[0].url == "hf://timm/net3/model.safetensors"


def test_resync_is_a_noop_and_updates_only_what_changed(cat: Catalogue) -> None:
    settings = get_settings()
    sync_source(cat.engine, ListScraper([record(i) for i in range(20)]), settings=settings)
    again = sync_source(cat.engine, ListScraper([record(i) for i in range(20)]), settings=settings)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 20)
    changed = [record(i, top1=99.5 if i == 7 else None) for i in range(20)]
    third = sync_source(cat.engine, ListScraper(changed), settings=settings)
    assert (third.added, third.updated, third.unchanged) == (0, 1, 19)
    e = cat.get("timm:net7.in21k_ft_in1k")
    assert e.top1 == 99.5
    assert len(e.claims) == 2, "an update replaces the source's own rows instead of piling them up"


def test_vanished_entries_are_marked_not_deleted_and_come_back(cat: Catalogue) -> None:
    settings = get_settings()
    sync_source(cat.engine, ListScraper([record(i) for i in range(10)]), settings=settings)
    s = sync_source(cat.engine, ListScraper([record(i) for i in range(8)]), settings=settings)
    assert s.removed == 2
    assert cat.count() == 8 and cat.count(include_removed=True) == 10
    assert cat.get("timm:net9.in21k_ft_in1k").removed_upstream
    s = sync_source(cat.engine, ListScraper([record(i) for i in range(10)]), settings=settings)
    assert s.removed == 0 and cat.count() == 10


def test_partial_crawl_marks_nothing_removed(cat: Catalogue) -> None:
    settings = get_settings()
    sync_source(cat.engine, ListScraper([record(i) for i in range(10)]), settings=settings)
    s = sync_source(
        cat.engine, ListScraper([record(i) for i in range(10)]), settings=settings, limit=3
    )
    assert (s.status, s.seen, s.removed) == ("partial", 3, 0)
    assert cat.count() == 10


def test_unchanged_markers_and_known_revisions(cat: Catalogue) -> None:
    settings = get_settings()
    first = [record(i) for i in range(5)]
    for r in first:
        r.revision = f"sha{r.name}"
    sync_source(cat.engine, ListScraper(list(first)), settings=settings)
    scraper = ListScraper([Unchanged(r.id) for r in first])
    s = sync_source(cat.engine, scraper, settings=settings)
    assert (s.unchanged, s.removed) == (5, 0)
    assert scraper.contexts[0].known["timm:net0.in21k_ft_in1k"] == "shanet0.in21k_ft_in1k"


def test_failing_source_is_recorded_and_keeps_what_it_wrote(cat: Catalogue) -> None:
    settings = get_settings(sync_batch_size=10)
    s = sync_source(
        cat.engine, ListScraper([record(i) for i in range(30)], fail_after=25), settings=settings
    )
    assert s.status == "failed" and "upstream went away" in (s.error or "")
    assert (
        cat.count() == 25
    )  # what was delivered before the failure is kept; nothing marked removed
    s = sync_source(cat.engine, ListScraper([record(i) for i in range(30)]), settings=settings)
    assert (s.status, s.added, s.unchanged) == ("ok", 5, 25)


def test_search_filters_and_sorting(cat: Catalogue) -> None:
    sync_source(cat.engine, ListScraper([record(i) for i in range(40)]), settings=get_settings())
    rows = cat.search(dataset="imagenet-1k", min_top1=85.0, family="ResNet", limit=5)
    assert rows and all(r.top1 is not None and r.top1 >= 85 and r.family == "resnet" for r in rows)
    assert [r.top1 for r in rows] == sorted((r.top1 for r in rows), reverse=True)
    by_params = cat.search(sort="params", descending=False, limit=3)
    assert [r.params for r in by_params] == [1_000_000, 1_000_001, 1_000_002]
    assert cat.search(dataset="CIFAR-10") == []
    with pytest.raises(InvalidQueryError):
        cat.search(sort="bogus")
    with pytest.raises(InvalidQueryError):
        cat.search(colour="red")
    frame = cat.to_dataframe()
    assert len(frame) == 40
    assert {
        "id",
        "source",
        "name",
        "architecture",
        "family",
        "num_classes",
        "params",
        "dataset",
        "top1",
    } <= set(frame.columns)


def test_unknown_id_is_a_typed_error_with_a_hint(cat: Catalogue) -> None:
    sync_source(cat.engine, ListScraper([record(1)]), settings=get_settings())
    with pytest.raises(EntryNotFoundError) as info:
        cat.get("timm:net1.in21k")
    assert "net1.in21k_ft_in1k" in (info.value.hint or "")
    assert cat.find("timm:nothing") is None


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.ingest import sync_source
    from securitynet.records import EntryRecord
    from securitynet.settings import get_settings

    class Slow:
        name = "timm"; needs_network = False
        def unavailable_reason(self, ctx): return None
        def iter_records(self, ctx):
            for i in range(100000):
                if i == 250:
                    print("READY", flush=True)
                if i >= 250:
                    time.sleep(0.01)
                yield EntryRecord(id=f"timm:k{i}.tag", params=i,
                                  claims=[{"dataset": "ImageNet-1k", "value": 50.0, "source": "timm-results"}],
                                  datasets=[{"dataset": "ImageNet-1k", "source": "timm"}])

    cat = Catalogue(sys.argv[1])
    sync_source(cat.engine, Slow(), settings=get_settings(sync_batch_size=50))
    """
)


@pytest.mark.slow
def test_sigkill_mid_sync_leaves_a_consistent_catalogue(catalogue_url: str, tmp_path: Path) -> None:
    script = tmp_path / "killme.py"
    script.write_text(_KILL_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), catalogue_url], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while proc.stdout.readline().strip() != "READY":
        assert time.monotonic() < deadline and proc.poll() is None
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    cat = Catalogue(catalogue_url)
    n = cat.count()
    assert n >= 250 and n % 50 == 0, "only whole batches are committed"
    with cat.session() as s:
        from sqlalchemy import func, select

        from securitynet.catalogue.models import AccuracyClaimRow, SyncRun

        claims = s.scalar(select(func.count()).select_from(AccuracyClaimRow))
        assert claims == n, "every committed entry has its claims: no half-written entry"
        assert s.scalar(select(SyncRun.status)) == "running"

    items = [
        EntryRecord(
            id=f"timm:k{i}.tag",
            params=i,
            claims=[{"dataset": "ImageNet-1k", "value": 50.0, "source": "timm-results"}],
            datasets=[{"dataset": "ImageNet-1k", "source": "timm"}],
        )
        for i in range(n + 100)
    ]
    s2 = sync_source(cat.engine, ListScraper(list(items)), settings=get_settings())
    assert (s2.status, s2.added, s2.unchanged) == ("ok", 100, n)
    with cat.session() as s:
        statuses = [r for r in s.scalars(select(SyncRun.status).order_by(SyncRun.id))]
    assert statuses == ["interrupted", "ok"]
    cat.close()


class FingerprintedScraper(ListScraper):
    def __init__(self, items: list[EntryRecord | Unchanged], fp: str) -> None:
        super().__init__(items)
        self.fp = fp

    def fingerprint(self, ctx: SyncContext) -> str | None:
        return self.fp


def test_unchanged_fingerprint_skips_reading_upstream(cat: Catalogue) -> None:
    settings = get_settings()
    sync_source(
        cat.engine,
        FingerprintedScraper([record(i) for i in range(5)], "timm 1.0.31"),
        settings=settings,
    )
    same = FingerprintedScraper([record(i) for i in range(5)], "timm 1.0.31")
    s = sync_source(cat.engine, same, settings=settings)
    assert same.contexts == [], "upstream was not read at all"
    assert (s.status, s.unchanged, s.removed) == ("ok", 5, 0)
    newer = FingerprintedScraper([record(i) for i in range(4)], "timm 1.0.32")
    s = sync_source(cat.engine, newer, settings=settings)
    assert newer.contexts and s.removed == 1


def test_fingerprint_skip_is_not_trusted_when_the_catalogue_lost_entries(cat: Catalogue) -> None:
    from sqlalchemy import delete

    from securitynet.catalogue.models import Entry

    settings = get_settings()
    sync_source(
        cat.engine, FingerprintedScraper([record(i) for i in range(5)], "v1"), settings=settings
    )
    with cat.session() as s, s.begin():
        s.execute(delete(Entry).where(Entry.id == "timm:net0.in21k_ft_in1k"))
    again = FingerprintedScraper([record(i) for i in range(5)], "v1")
    s = sync_source(cat.engine, again, settings=settings)
    assert again.contexts, "the source was re-read"
    assert s.added == 1 and cat.count() == 5
    forced = FingerprintedScraper([record(i) for i in range(5)], "v1")
    sync_source(cat.engine, forced, settings=settings, full=True)
    assert forced.contexts


def test_a_sync_that_fails_part_way_marks_no_live_entry_removed(cat: Catalogue) -> None:
    settings = get_settings(sync_batch_size=10)
    full = sync_source(cat.engine, ListScraper([record(i) for i in range(30)]), settings=settings)
    assert (full.status, full.added) == ("ok", 30)
    broken = sync_source(
        cat.engine, ListScraper([record(i) for i in range(30)], fail_after=12), settings=settings
    )
    assert (broken.status, broken.removed) == ("failed", 0)
    assert cat.count() == 30
    assert cat.count(include_removed=True) == 30
    assert not any(cat.get(f"timm:net{i}.in21k_ft_in1k").removed_upstream for i in range(30))


def test_full_reaches_the_scraper(cat: Catalogue) -> None:
    settings = get_settings()
    sync_source(cat.engine, FingerprintedScraper([record(i) for i in range(3)], "v1"), settings=settings)
    forced = FingerprintedScraper([record(i) for i in range(3)], "v1")
    sync_source(cat.engine, forced, settings=settings, full=True)
    (ctx,) = forced.contexts
    assert ctx.full and dict(ctx.known) == {}, "a full sync takes no 'unchanged' shortcut"
