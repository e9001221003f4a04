"""The hf scraper against a loopback Hub serving the real recordings (no patching of
huggingface_hub: it is pointed at the server through the endpoint settings)."""

from __future__ import annotations

from typing import Any

import pytest

from securitynet.errors import UpstreamError
from securitynet.records import EntryRecord, Stage
from securitynet.scrapers import get_scraper
from securitynet.scrapers.base import SyncContext, Unchanged
from securitynet.settings import get_settings
from tests.fakehub import VIT_ID, FakeHub, Request

LISTED = 119  # the recorded ViT and 118 cards; the two Taiyi cards are feature-extraction models
PAGES = 3 + 2  # 119 image-classification models and 53 timm ones, 50 a page


def crawl(*, known: dict[str, str | None] | None = None, state: dict[str, Any] | None = None, limit: int | None = None,
          options: dict[str, Any] | None = None, **settings: Any) -> tuple[list[EntryRecord | Unchanged], SyncContext]:  # fmt: skip
    ctx = SyncContext(settings=get_settings(**settings), known=known or {}, limit=limit, state=state or {},
                      options=options or {})  # fmt: skip
    items = list(get_scraper("huggingface").iter_records(ctx))
    return items, ctx


def records(items: list[EntryRecord | Unchanged]) -> dict[str, EntryRecord]:
    return {r.id: r for r in items if isinstance(r, EntryRecord)}


def files_of(hub: FakeHub, repo: str) -> int:
    return hub.count("file", where=lambda r: r.path.startswith(f"/{repo}/resolve/"))


# --- a first crawl ---------------------------------------------------------------------------


def test_first_crawl_annotates_every_listed_model(hub: FakeHub) -> None:
    items, ctx = crawl()
    got = records(items)
    assert len(items) == len(got) == LISTED
    assert (
        "hf:IDEA-CCNL/Taiyi-CLIP-RoBERTa-102M-ViT-L-Chinese" not in got
    )  # pipeline tag feature-extraction

    vit = got[f"hf:{VIT_ID}"]
    assert vit.revision == "3f49326eb077187dfe1c2a2bb15fbd74e6ab91e3"
    assert (vit.architecture, vit.family, vit.num_classes, vit.input_size) == (
        "ViTForImageClassification",
        "vit",
        1000,
        224,
    )
    assert (
        vit.params == 86567656 and vit.licence == "apache-2.0" and vit.paper == "arXiv:2010.11929"
    )
    assert [(d.dataset, d.stage) for d in vit.datasets] == [
        ("ImageNet-21k", Stage.PRETRAIN),
        ("ImageNet-1k", Stage.TRAIN),
    ]
    assert [(f.url, f.revision, f.format) for f in vit.files] == [
        (f"hf://{VIT_ID}/model.safetensors", vit.revision, "safetensors")
    ]
    assert vit.load is not None and vit.load.builder == "transformers"
    assert vit.load.architecture == "ViTForImageClassification" and vit.load.labels is not None
    assert vit.load.labels[0] == "tench, Tinca tinca" and len(vit.load.labels) == 1000
    assert vit.load.mean == (0.5, 0.5, 0.5) and vit.load.input_size == (3, 224, 224)
    assert vit.evidence["params"] == "Hub listing: safetensors.total"
    assert vit.upstream_url == f"{hub.url}/{VIT_ID}"

    timm = got["hf:timm/convnext_small.fb_in1k"]
    assert timm.load is not None and (timm.load.builder, timm.load.architecture) == (
        "timm",
        "hf-hub:timm/convnext_small.fb_in1k",
    )
    assert timm.files[0].url == "hf://timm/convnext_small.fb_in1k/model.safetensors"
    assert (
        timm.best_top1() == 83.142 and timm.params == 50_200_000
    )  # the card's "Params (M): 50.2", as the fixture lists it

    trainer = got["hf:Devarshi/Brain_Tumor_Detector_swin"]
    assert "base_model:microsoft/swin-base-patch4-window7-224-in22k" in trainer.tags
    assert trainer.best_top1() == pytest.approx(99.813084)
    assert ctx.state.get("retry", []) == []
    errors = {r.id: r.errors for r in got.values() if r.errors}
    assert errors == {
        "hf:keras-io/Image-Classification-using-EANet": [
            "model-index result 0: accuracy value [] is not a number"
        ]
    }


def test_listing_asks_for_every_field_and_follows_link_pages(hub: FakeHub) -> None:
    crawl()
    listing = [r for r in hub.requests if r.route == "listing"]
    assert len(listing) == PAGES
    first = listing[0].path
    for name in (
        "sha",
        "cardData",
        "model-index",
        "siblings",
        "safetensors",
        "config",
        "tags",
        "gated",
    ):
        assert f"expand={name}" in first
    assert (
        sum("cursor=" in r.path for r in listing) == PAGES - 2
    )  # every page after a query's first
    assert hub.count("model-info") == 0  # nothing is asked per model through the API


def test_files_read_per_new_model(hub: FakeHub) -> None:
    crawl()
    # ViT: README (no claim in its metadata), config.json, preprocessor_config.json
    assert files_of(hub, VIT_ID) == 3
    # a Trainer card whose model-index holds the claim but not the base model: README + config.json
    assert files_of(hub, "Devarshi/Brain_Tumor_Detector_swin") == 2
    # a HuggingPics card whose (raw-read) model-index gives the claim and nothing to find in prose
    assert files_of(hub, "Albe/housing-categories") == 1
    assert hub.count("file") / LISTED < 2


def test_card_policy_never_reads_no_readme(hub: FakeHub) -> None:
    items, _ = crawl(options={"files": {"card": "never", "config": False, "preprocessor": False}})
    assert hub.count("file") == 0
    albe = records(items)["hf:Albe/housing-categories"]
    assert albe.best_top1() == 87.5  # the listing's card metadata alone


# --- incremental -------------------------------------------------------------------------------


def test_unchanged_models_cost_no_request(hub: FakeHub) -> None:
    first, _ = crawl()
    known = {r.id: r.revision for r in records(first).values()}
    hub.reset_counts()
    second, _ = crawl(known=known)
    assert all(isinstance(i, Unchanged) for i in second) and len(second) == LISTED
    assert hub.count() == hub.count("listing") == PAGES


def test_changed_model_is_read_again_and_only_it(hub: FakeHub) -> None:
    first, _ = crawl()
    known = {r.id: r.revision for r in records(first).values()}
    new_sha = hub.new_commit("Albe/housing-categories")
    hub.remove_model("Sena/flowers")
    hub.reset_counts()
    second, _ = crawl(known=known)
    changed = records(second)
    assert (
        list(changed) == ["hf:Albe/housing-categories"]
        and changed["hf:Albe/housing-categories"].revision == new_sha
    )
    assert "hf:Sena/flowers" not in {i.id for i in second}  # gone: not yielded, the sync marks it
    assert hub.count("file") == files_of(hub, "Albe/housing-categories") == 1


def test_interrupted_crawl_resumes_without_reading_stored_models_again(hub: FakeHub) -> None:
    ctx = SyncContext(settings=get_settings())
    stored: dict[str, str | None] = {}
    for item in get_scraper("hf").iter_records(ctx):  # killed after 40 entries were stored
        assert isinstance(item, EntryRecord)
        stored[item.id] = item.revision
        if len(stored) == 40:
            break
    stored_repos = [i.split(":", 1)[1] for i in stored]
    hub.reset_counts()
    items, _ = crawl(known=stored, state=ctx.state)
    assert sum(isinstance(i, Unchanged) for i in items) == 40 and len(items) == LISTED
    assert all(files_of(hub, repo) == 0 for repo in stored_repos)


def test_limit_takes_the_most_downloaded_first(hub: FakeHub) -> None:
    items, _ = crawl(limit=10)
    assert len(items) == 10 and items[0].id == f"hf:{VIT_ID}"
    assert hub.count("listing") == 1  # the limit is the page size: no second page


# --- where the Hub is, who we are -------------------------------------------------------------


def test_hf_endpoint_is_read_when_the_sync_starts(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECURITYNET_HF_ENDPOINT")
    monkeypatch.setenv(
        "HF_ENDPOINT", hub.url
    )  # huggingface_hub is imported already: its constant is stale
    items, _ = crawl(limit=3)
    assert len(items) == 3 and hub.count("listing") == 1


def test_our_endpoint_setting_wins_over_hf_endpoint(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    items, _ = crawl(limit=3)
    assert len(items) == 3


def test_hf_token_is_sent(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_loopbacktoken")
    crawl(limit=2)
    assert hub.requests and all(
        r.headers.get("authorization") == "Bearer hf_loopbacktoken" for r in hub.requests
    )
    assert all("securitynet/" in r.headers.get("user-agent", "") for r in hub.requests)


def test_offline_setting_makes_the_source_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    ctx = SyncContext(settings=get_settings())
    assert get_scraper("hf").unavailable_reason(ctx) == "offline (SECURITYNET_OFFLINE)"


# --- what goes wrong upstream ------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(hub: FakeHub) -> None:
    hub.inject(r"^/api/models\?", status=429, headers={"Retry-After": "0"})
    hub.inject(rf"^/{VIT_ID}/resolve/.*/README.md", status=429, headers={"Retry-After": "0"})
    items, ctx = crawl()
    assert len(records(items)) == LISTED and not records(items)[f"hf:{VIT_ID}"].errors
    assert hub.count("listing") == PAGES + 1 and files_of(hub, VIT_ID) == 4
    assert ctx.state.get("retry", []) == []


def test_persistent_429_is_an_entry_error_and_stops_file_reads_for_the_run(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/", status=429, headers={"Retry-After": "0"}, times=100)
    items, ctx = crawl(http_retries=1, hf_workers=1)
    got = records(items)
    assert len(got) == LISTED  # the crawl went on
    vit = got[f"hf:{VIT_ID}"]
    assert any("rate-limiting" in e for e in vit.errors)
    assert f"hf:{VIT_ID}" in ctx.state["retry"]
    later = [r for r in got.values() if any("rate-limited this sync" in e for e in r.errors)]
    assert later and all(r.id in ctx.state["retry"] for r in later)
    reads_after = hub.count("file") - files_of(hub, VIT_ID)
    assert reads_after < 10  # only what was in flight when the 429 came

    # the next sync reads them again although their sha did not change
    hub.faults.clear()
    hub.reset_counts()
    known = {r.id: r.revision for r in got.values()}
    to_retry = set(ctx.state["retry"])
    again, ctx2 = crawl(known=known, state=dict(ctx.state))
    reread = records(again)
    assert set(reread) == to_retry
    assert {r.id for r in reread.values() if r.errors} <= {
        "hf:keras-io/Image-Classification-using-EANet"
    }
    assert ctx2.state["retry"] == []


def test_server_error_once_is_retried(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/config.json", status=500)
    items, _ = crawl()
    vit = records(items)[f"hf:{VIT_ID}"]
    assert vit.errors == [] and vit.num_classes == 1000


def test_server_error_that_persists_is_an_entry_error_to_retry(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/config.json", status=503, times=100)
    items, ctx = crawl(http_retries=2)
    vit = records(items)[f"hf:{VIT_ID}"]
    assert vit.errors == [f"{VIT_ID}/config.json: HTTP 503"]
    assert (
        vit.num_classes is None and vit.architecture == "ViTForImageClassification"
    )  # from the listing
    assert ctx.state["retry"] == [f"hf:{VIT_ID}"]
    assert files_of(hub, VIT_ID) == 2 + 3  # README, preprocessor; config tried 3 times


def test_timeout_is_an_entry_error_to_retry(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/config.json", kind="stall", delay=2.0, times=100)
    items, ctx = crawl(limit=1, http_timeout=0.5, http_retries=0)
    vit = records(items)[f"hf:{VIT_ID}"]
    assert len(vit.errors) == 1 and "Timeout" in vit.errors[0]
    assert ctx.state["retry"] == [f"hf:{VIT_ID}"]


def test_truncated_listing_page_restarts_the_listing(hub: FakeHub) -> None:
    hub.inject(r"^/api/models\?.*cursor=50", kind="truncate")
    items, _ = crawl()
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)) == LISTED
    assert hub.count("listing") == PAGES + 2  # page 1 again, then page 2


def test_page_cut_mid_stream_is_retried(hub: FakeHub) -> None:
    hub.inject(r"^/api/models\?.*cursor=50", kind="cut")
    items, _ = crawl()
    assert len({i.id for i in items}) == LISTED


def test_listing_refused_ends_the_crawl_after_what_it_gave(hub: FakeHub) -> None:
    hub.inject(r"^/api/models\?.*cursor=50", status=403, times=100)
    ctx = SyncContext(settings=get_settings())
    given: list[str] = []
    with pytest.raises(UpstreamError, match="access denied"):
        for item in get_scraper("hf").iter_records(ctx):
            given.append(item.id)
    assert len(given) == 50


def test_truncated_config_is_an_error_not_retried(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/config.json", kind="truncate", times=100)
    items, ctx = crawl()
    vit = records(items)[f"hf:{VIT_ID}"]
    assert len(vit.errors) == 1 and "config.json is not valid JSON" in vit.errors[0]
    assert ctx.state.get("retry", []) == []  # the same bytes would come back


def test_missing_readme_and_html_readme(hub: FakeHub) -> None:
    del hub.files[("Albe/housing-categories", "README.md")]
    hub.set_file(VIT_ID, "README.md", "<!DOCTYPE html>\n<html><body>Accuracy: 0.99</body></html>")
    items, _ = crawl(options={"files": {"card": "always"}})
    got = records(items)
    assert got["hf:Albe/housing-categories"].errors == [
        "Albe/housing-categories/README.md: not found (404)"
    ]
    assert (
        got["hf:Albe/housing-categories"].best_top1() == 87.5
    )  # still read from the listing's metadata
    assert got[f"hf:{VIT_ID}"].errors == ["README.md is an HTML page, not a model card"]


def test_malformed_front_matter_is_an_entry_error(hub: FakeHub) -> None:
    hub.set_file(
        VIT_ID, "README.md", "---\nlicense: [apache\n---\n# ViT\n\n## Results\n- Acc1: 81.1\n"
    )
    items, _ = crawl()
    vit = records(items)[f"hf:{VIT_ID}"]
    assert any("not valid YAML" in e for e in vit.errors)
    assert vit.best_top1() == 81.1


def test_requests_seen_by_the_hub_are_what_the_library_sends(hub: FakeHub) -> None:
    crawl(limit=1)
    methods = {(r.method, r.route) for r in hub.requests}
    assert methods <= {("GET", "listing"), ("GET", "file")}
    assert isinstance(hub.requests[0], Request)


# --- files, gated repositories, timm configs ----------------------------------------------------


def test_weight_files_prefer_safetensors_and_keep_lfs_checksums() -> None:
    from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

    from securitynet.scrapers.huggingface import weight_files

    digest = "a" * 64
    lfs = BlobLfsInfo(size=346_000_000, sha256=digest, pointer_size=134)
    siblings = [
        RepoSibling("pytorch_model.bin", size=346_000_000),
        RepoSibling("model.safetensors", size=346_000_000, lfs=lfs),
        RepoSibling("tf_model.h5"),
    ]
    (ref,) = weight_files("o/m", "c0ffee", siblings)
    assert (ref.url, ref.revision, ref.size, ref.sha256, ref.checksum_algo, ref.format) == (
        "hf://o/m/model.safetensors", "c0ffee", 346_000_000, digest, "sha256", "safetensors",
    )  # fmt: skip

    sharded = [
        RepoSibling("model-00002-of-00002.safetensors"),
        RepoSibling("model.safetensors.index.json"),
        RepoSibling("model-00001-of-00002.safetensors"),
    ]
    refs = weight_files("o/big", "c0ffee", sharded)
    assert [(r.filename, r.role) for r in refs] == [
        ("model.safetensors.index.json", "index"),
        ("model-00001-of-00002.safetensors", "weights"),
        ("model-00002-of-00002.safetensors", "weights"),
    ]
    assert weight_files("o/keras", "c0ffee", [RepoSibling("saved_model.pb")]) == []


def test_gated_repository_is_tagged_and_its_refusal_recorded(hub: FakeHub) -> None:
    hub.models[VIT_ID]["gated"] = "manual"
    hub.inject(rf"^/{VIT_ID}/resolve/.*/(config|preprocessor_config).json", status=403, times=10)
    items, ctx = crawl(limit=1)
    vit = records(items)[f"hf:{VIT_ID}"]
    assert "gated:manual" in vit.tags
    assert vit.errors == [
        f"{VIT_ID}/config.json: access denied (403; gated or private)",
        f"{VIT_ID}/preprocessor_config.json: access denied (403; gated or private)",
    ]
    assert ctx.state.get("retry", []) == []  # a token is needed, not another try


def test_timm_config_from_timm_registry_fills_the_load_spec(hub: FakeHub) -> None:
    pytest.importorskip("timm")
    from tests.fakehub import timm_config

    config = timm_config("convnext_small.fb_in1k")
    assert config is not None
    hub.set_file("timm/convnext_small.fb_in1k", "config.json", config)
    items, _ = crawl(options={"queries": [{"filter": "timm"}]}, limit=60)
    entry = records(items)["hf:timm/convnext_small.fb_in1k"]
    assert entry.load is not None
    assert (entry.num_classes, entry.input_size, entry.family) == (1000, 224, "convnext")
    assert entry.load.mean == (0.485, 0.456, 0.406) and entry.load.crop_pct == 0.875
    assert entry.load.interpolation == "bicubic" and entry.load.crop_mode == "center"


def test_listing_rate_limited_past_the_retries_stops_without_starting_again(hub: FakeHub) -> None:
    from securitynet.errors import RateLimitedError

    hub.inject(r"^/api/models\?.*cursor=50", status=429, headers={"Retry-After": "0"}, times=100)
    ctx = SyncContext(settings=get_settings())
    given: list[str] = []
    with pytest.raises(RateLimitedError):
        for item in get_scraper("hf").iter_records(ctx):
            given.append(item.id)
    assert len(given) == 50  # what came before is kept (the sync stores it; the next resumes)
    assert hub.count("listing") == 1 + 6  # page 1, then page 2 and huggingface_hub's 5 retries


def test_hf_source_implements_the_protocol(make_ctx: Any) -> None:
    from securitynet.scrapers import Scraper

    scraper = get_scraper("huggingface")
    assert isinstance(scraper, Scraper)
    assert (scraper.name, scraper.needs_network) == ("hf", True)
    assert (
        scraper.unavailable_reason(make_ctx()) == "offline (SECURITYNET_OFFLINE)"
    )  # make_ctx is offline
    assert scraper.unavailable_reason(make_ctx(offline=False)) is None
