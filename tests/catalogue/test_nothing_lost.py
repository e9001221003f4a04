"""A sync never takes away what the catalogue holds because an optional input is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.models import SyncRun
from securitynet.settings import get_settings


def _timm_accuracies(cat: Catalogue) -> int:
    return int(
        cat.sql(
            "select count(*) from accuracy_claim where entry_id like 'timm:%' and metric = 'top1'"
        ).rows[0][0]
    )


def _last_run_options(cat: Catalogue) -> dict[str, object]:
    with cat.session() as s:
        options = s.scalar(
            select(SyncRun.options).where(SyncRun.source == "timm").order_by(SyncRun.id.desc())
        )
    return dict(options or {})


@pytest.fixture
def cat(tmp_path: Path) -> Catalogue:
    return Catalogue(f"sqlite:///{tmp_path / 'c.db'}", settings=get_settings(offline=True))


def test_offline_first_sync_gives_timm_accuracies(cat: Catalogue) -> None:
    (summary,) = cat.sync("timm")
    assert summary.status == "ok"
    assert _timm_accuracies(cat) > 1000
    assert cat.get("timm:resnet50.tv_in1k").top1 == 76.156
    # a sync that changed rows leaves the planner statistics behind (ANALYZE)
    assert cat.sql("select count(*) from sqlite_stat1 where tbl = 'accuracy_claim'").rows[0][0] > 0


def test_plain_sync_after_a_folder_sync_keeps_the_claims(
    cat: Catalogue, shared_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "results-imagenet.csv").write_bytes(
        (shared_dir / "fixtures/timm/results-imagenet.csv").read_bytes()
    )
    cat.sync("timm", options={"timm_results": str(folder)})
    held = _timm_accuracies(cat)
    assert held > 1000

    cat.sync("timm")  # no folder given: the one the last sync read is read again
    assert _timm_accuracies(cat) == held

    (folder / "results-imagenet.csv").unlink()
    (summary,) = cat.sync("timm")  # it is gone: fail, and change nothing
    assert summary.status == "failed" and "is gone" in (summary.error or "")
    assert _timm_accuracies(cat) == held
    assert cat.count(source="timm") > 1000


def test_full_is_honoured_by_the_api(cat: Catalogue) -> None:
    cat.sync("timm")
    cat.sync("timm")
    assert _last_run_options(cat).get("skipped") == "fingerprint unchanged"
    (summary,) = cat.sync("timm", full=True)
    assert summary.status == "ok"
    assert "skipped" not in _last_run_options(cat), "full=True re-read the source"
