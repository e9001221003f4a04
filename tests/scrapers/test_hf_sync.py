"""The hf source end to end: ``Catalogue.sync`` against the loopback Hub serving the real
recordings, into a real SQLite catalogue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from securitynet.catalogue.api import Catalogue
from securitynet.records import CatalogueEntry, Metric
from tests.fakehub import VIT_ID, FakeHub

TRUTH = yaml.safe_load(
    (Path(__file__).parent.parent / "annotate" / "hf_cards_truth.yaml").read_text()
)
#: Cards whose model the hf source does not list: their pipeline tag is feature-extraction.
NOT_LISTED = {"IDEA-CCNL/Taiyi-CLIP-RoBERTa-102M-ViT-L-Chinese"}
PAGES = 5


@pytest.fixture
def catalogue(catalogue_url: str) -> Iterator[Catalogue]:
    """A fresh catalogue on SQLite, then on PostgreSQL."""
    with Catalogue(catalogue_url) as cat:
        yield cat


def top1_values(entry: CatalogueEntry) -> list[float]:
    return [c.value for c in entry.claims if c.metric is Metric.TOP1]


def test_card_claims_land_in_the_catalogue(hub: FakeHub, catalogue: Catalogue) -> None:
    (summary,) = catalogue.sync("huggingface")
    assert (summary.status, summary.added, summary.errors) == ("ok", 119, 1)
    landed, trainer_landed = [], []
    for repo, truth in TRUTH["claims"].items():
        if repo in NOT_LISTED:
            continue
        entry = catalogue.get(f"hf:{repo}")
        values = top1_values(entry)
        if any(v == pytest.approx(truth["top1"], abs=1e-3) for v in values):
            landed.append(repo)
        if truth.get("trainer") and any(
            abs(v - truth["trainer_eval"]) <= 0.005 + 1e-9 for v in values
        ):
            trainer_landed.append(repo)
    in_scope = [r for r in TRUTH["claims"] if r not in NOT_LISTED]
    assert sorted(landed) == sorted(in_scope)
    assert len(trainer_landed) == 17
    for repo in TRUTH["not_claims"]:
        if (entry := catalogue.find(f"hf:{repo}")) is not None:
            assert entry.claims == [], repo


def test_merged_view_shows_the_card_accuracy(hub: FakeHub, catalogue: Catalogue) -> None:
    catalogue.sync("hf")
    beans = catalogue.search(source="huggingface", dataset="beans", sort="top1")
    assert [(e.name, e.top1) for e in beans] == [
        ("alexrods/vit_model", 100.0),
        ("nateraw/timm-resnet18-beans-test-2", pytest.approx(57.894737)),
    ]
    vit = catalogue.get(f"hf:{VIT_ID}")
    assert (
        vit.revision == "3f49326eb077187dfe1c2a2bb15fbd74e6ab91e3" and vit.dataset == "ImageNet-1k"
    )
    assert (
        vit.files[0].url == f"hf://{VIT_ID}/model.safetensors"
        and vit.files[0].revision == vit.revision
    )
    facts = {f.key: f.evidence for f in vit.facts}
    assert facts["params"] == "Hub listing: safetensors.total"


def test_second_sync_of_an_unchanged_hub_makes_no_per_model_request(
    hub: FakeHub, catalogue: Catalogue
) -> None:
    catalogue.sync("hf")
    hub.reset_counts()
    (summary,) = catalogue.sync("hf")
    assert (summary.status, summary.added, summary.updated, summary.unchanged) == ("ok", 0, 0, 119)
    assert hub.count() == hub.count("listing") == PAGES
    assert hub.count("file") == hub.count("model-info") == 0


def test_changed_and_vanished_models(hub: FakeHub, catalogue: Catalogue) -> None:
    catalogue.sync("hf")
    hub.new_commit("Albe/housing-categories")
    hub.remove_model("Sena/flowers")
    hub.reset_counts()
    (summary,) = catalogue.sync("hf")
    assert (summary.updated, summary.unchanged, summary.removed) == (1, 117, 1)
    assert hub.count("file") == 0  # its claim is in the listing's card metadata
    gone = catalogue.get("hf:Sena/flowers")
    assert gone.removed_upstream and top1_values(gone)  # marked, not deleted
    assert catalogue.count(source="hf") == 118


def test_interrupted_sync_resumes_without_fetching_what_it_stored(
    hub: FakeHub, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_SYNC_BATCH_SIZE", "10")  # the sync commits every 10 entries
    catalogue = Catalogue(catalogue_url)
    hub.inject(
        r"^/api/models\?.*cursor=50", status=403, times=1
    )  # the listing breaks after 50 models
    (first,) = catalogue.sync("hf")
    assert first.status == "failed" and first.added == 50 and first.removed == 0
    stored = [e.name for e in catalogue.search(source="hf", limit=None)]
    hub.reset_counts()
    (second,) = catalogue.sync("hf")
    assert (second.status, second.added, second.unchanged) == ("ok", 69, 50)
    assert all(
        hub.count("file", where=lambda r, repo=repo: r.path.startswith(f"/{repo}/")) == 0
        for repo in stored
    )


def test_partial_crawl_with_limit(hub: FakeHub, catalogue: Catalogue) -> None:
    (summary,) = catalogue.sync("hf", limit=7)
    assert (summary.status, summary.added) == ("partial", 7)
    assert hub.count("listing") == 1


def test_first_show_fills_what_the_sync_left_pending_and_writes_it_back(
    hub: FakeHub, catalogue: Catalogue
) -> None:
    catalogue.sync("hf")
    vit = catalogue.get(f"hf:{VIT_ID}")
    assert vit.num_classes is None and vit.raw["pending"] == ["config", "preprocessor", "file-pins"]
    assert vit.files[0].sha256 is None
    hub.reset_counts()
    assert catalogue.fill_pending(f"hf:{VIT_ID}") is True
    assert hub.count("file") == 3  # config.json, preprocessor_config.json, HEAD of the weights
    vit = catalogue.get(f"hf:{VIT_ID}")
    assert (vit.num_classes, vit.input_size) == (1000, 224) and "pending" not in vit.raw
    assert vit.load is not None and vit.load.labels is not None and len(vit.load.labels) == 1000
    size, digest = hub.lfs[(VIT_ID, "model.safetensors")]
    assert (vit.files[0].size, vit.files[0].sha256) == (size, digest)
    assert {f.key: f.value for f in vit.facts}["num_classes"] == 1000
    assert catalogue.count(source="hf", num_classes=1000) >= 1

    hub.reset_counts()
    assert catalogue.fill_pending(f"hf:{VIT_ID}") is False and hub.count() == 0  # once only
    (again,) = catalogue.sync("hf")  # an unchanged model keeps what was filled
    assert again.unchanged == 119 and catalogue.get(f"hf:{VIT_ID}").num_classes == 1000


def test_fill_offline_leaves_the_entry_pending(
    hub: FakeHub, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue.sync("hf", limit=1)
    monkeypatch.setenv("SECURITYNET_HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    with Catalogue(catalogue.url) as elsewhere:
        assert elsewhere.fill_pending(f"hf:{VIT_ID}") is False
        assert elsewhere.get(f"hf:{VIT_ID}").raw["pending"]


def test_sync_with_no_network_fails_at_once_with_one_line(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_HF_ENDPOINT", "http://hub.invalid")  # never resolves
    monkeypatch.setenv("SECURITYNET_HTTP_RETRIES", "5")
    monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "4")  # any retry would cost 36 s
    start = time.monotonic()
    with Catalogue(catalogue.url) as here:  # settings read now, with the endpoint above
        (summary,) = here.sync("hf", limit=3)
    assert time.monotonic() - start < 20  # a loaded 2-core machine; it was 179 s
    assert summary.status == "failed" and summary.error is not None
    assert "cannot be reached" in summary.error and "\n" not in summary.error


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI's own path is the same on both databases (the API tests above cover both)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", url)
    return url


def _cli(*args: str) -> tuple[int, str, str]:
    """``securitynet ARGS...`` in-process, through ``main()`` (the CLI's error boundary)."""
    from typer.testing import CliRunner

    from securitynet.cli.app import main

    with CliRunner().isolation() as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_cli_show_fills_a_pending_hub_entry(
    hub: FakeHub, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    assert _cli("sync", "--source", "hf", "--limit", "3")[0] == 0
    hub.reset_counts()
    code, out, _ = _cli("show", f"hf:{VIT_ID}", "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["num_classes"] == 1000 and "pending" not in shown["raw"]
    assert shown["files"][0]["sha256"] == hub.lfs[(VIT_ID, "model.safetensors")][1]
    assert hub.count("file") == 3


def test_cli_sync_with_no_network_answers_in_seconds_with_one_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_HF_ENDPOINT", "http://hub.invalid")  # never resolves
    monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "4")  # any retry would cost 36 s
    monkeypatch.delenv("SECURITYNET_DEBUG", raising=False)
    start = time.monotonic()
    code, out, err = _cli("sync", "--source", "hf", "--limit", "3")
    assert code == 1 and time.monotonic() - start < 20  # a loaded 2-core machine; it was 179 s
    said = [line for line in (out + err).splitlines() if "cannot be reached" in line]
    assert len(said) == 1 and "Traceback" not in out + err
    assert "retry" not in (out + err).lower()  # no retry chatter


def test_cli_show_offline_says_what_is_pending(
    hub: FakeHub, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _cli("sync", "--source", "hf", "--limit", "1")[0] == 0
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    hub.reset_counts()
    code, out, _ = _cli("show", f"hf:{VIT_ID}")
    assert code == 0 and hub.count() == 0
    (line,) = [x for x in out.splitlines() if x.startswith("pending ")]
    assert line.split(None, 1)[1].startswith("config, preprocessor, file-pins (read on the first")
