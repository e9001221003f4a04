"""The hf scraper against a loopback Hub serving the real recordings (no patching of
huggingface_hub: it is pointed at the server through the endpoint settings)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest

from securitynet.errors import SourceUnavailableError, UpstreamError
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
    # from the listing's trimmed config; classes, labels, preprocessing and pins wait
    assert (vit.architecture, vit.family, vit.num_classes, vit.input_size) == (
        "ViTForImageClassification",
        "vit",
        None,
        None,
    )
    assert vit.raw["pending"] == ["config", "preprocessor", "file-pins"]
    assert (
        vit.params == 86567656 and vit.licence == "apache-2.0" and vit.paper == "arXiv:2010.11929"
    )
    assert [(d.dataset, d.stage) for d in vit.datasets] == [
        ("ImageNet-21k", Stage.PRETRAIN),
        ("ImageNet-1k", Stage.TRAIN),
    ]
    assert [(f.url, f.revision, f.format, f.sha256) for f in vit.files] == [
        (f"hf://{VIT_ID}/model.safetensors", vit.revision, "safetensors", None)
    ]
    assert vit.load is not None and vit.load.builder == "transformers"
    assert vit.load.architecture == "ViTForImageClassification" and vit.load.labels is None
    assert vit.evidence["params"] == "Hub listing: safetensors.total"

    # the first load or show reads them: config.json, preprocessor_config.json, one HEAD
    hub.reset_counts()
    fill = get_scraper("hf").fill_pending(vit, get_settings())
    assert (fill.num_classes, fill.input_size, fill.pending) == (1000, 224, [])
    assert fill.load is not None and fill.load.labels is not None
    assert fill.load.labels[0] == "tench, Tinca tinca" and len(fill.load.labels) == 1000
    assert fill.load.mean == (0.5, 0.5, 0.5) and fill.load.input_size == (3, 224, 224)
    size, digest = hub.lfs[(VIT_ID, "model.safetensors")]
    assert (fill.files[0].size, fill.files[0].sha256, fill.files[0].checksum_algo) == (
        size, digest, "sha256",
    )  # fmt: skip
    assert [(r.method, r.path.rsplit("/", 1)[1]) for r in hub.requests] == [
        ("GET", "config.json"), ("GET", "preprocessor_config.json"), ("HEAD", "model.safetensors"),
    ]  # fmt: skip
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
    (claim,) = trainer.claims
    assert (claim.value, claim.split) == (pytest.approx(99.813084), "train")
    # the Trainer filed it under the train split; with nothing else stated it still counts
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
    # ViT: README (no claim in its metadata); its configs wait for the first load or show
    assert files_of(hub, VIT_ID) == 1
    # a Trainer card whose model-index holds the claim but not the base model: README
    assert files_of(hub, "Devarshi/Brain_Tumor_Detector_swin") == 1
    # a HuggingPics card whose (raw-read) model-index gives the claim: nothing
    assert files_of(hub, "Albe/housing-categories") == 0
    assert not any("config" in r.path for r in hub.requests if r.route == "file")
    assert (hub.count("file") + hub.count("listing")) / LISTED < 1


def test_signalled_card_policy_reads_only_tool_written_cards(hub: FakeHub) -> None:
    items, _ = crawl(options={"files": {"card": "signalled"}})
    read = {r.path.split("/resolve/")[0][1:] for r in hub.requests if r.route == "file"}
    assert "Devarshi/Brain_Tumor_Detector_swin" in read  # Trainer, no base model in metadata
    assert "DominikB/autotrain-person-classifier-1401653210" in read  # AutoTrain, no claim
    assert VIT_ID not in read and "timm/convnext_small.fb_in1k" not in read
    assert len(read) == 25 and len(records(items)) == LISTED


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
    assert hub.count("file") == 0  # its claim is in the listing's card metadata


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
    assert hub.count("listing") == PAGES + 1 and files_of(hub, VIT_ID) == 2
    assert ctx.state.get("retry", []) == []


def test_long_429_pauses_the_crawl_and_resumes(hub: FakeHub) -> None:
    """A spent window (429, RateLimit r=0;t=2) pauses every file read for the seconds the Hub
    names, then the crawl goes on: no entry gives up, nothing is left to retry."""
    spent = {"RateLimit": '"resolvers";r=0;t=2', "RateLimit-Policy": '"fixed window";"resolvers";q=500;w=1'}  # fmt: skip
    hub.inject(r"/resolve/.*/README.md", status=429, headers=spent, times=2)
    items, ctx = crawl(limit=40, hf_workers=1)  # one reader: no other read on its way
    got = records(items)
    assert len(got) == 40 and not any(any("rate" in e for e in r.errors) for r in got.values())
    assert ctx.state.get("retry", []) == []
    reads = [r for r in hub.requests if r.route == "file"]
    first = next(r for r in reads if r.status == 429)
    # nothing is sent until the two seconds the Hub named are over; then the reads go on
    assert not [r for r in reads if first.at < r.at < first.at + 1.95]
    assert [r for r in reads if r.at >= first.at + 1.95 and r.status == 200]
    assert sum(r.status == 429 for r in reads) == 2


def test_pacing_by_rate_limit_headers_stays_under_the_limit(hub: FakeHub) -> None:
    hub.limit("resolvers", quota=12, window=1.0)
    items, ctx = crawl(limit=40)
    reads = [r for r in hub.requests if r.route == "file"]
    assert len(reads) >= 30 and not [r for r in reads if r.status == 429]
    assert reads[-1].at - reads[0].at >= 2.0  # paced over three windows or more
    assert not any(
        r.errors
        for r in records(items).values()
        if r.id != "hf:keras-io/Image-Classification-using-EANet"
    )
    assert ctx.state.get("retry", []) == []


def test_persistent_429_is_an_entry_error_to_retry_and_the_crawl_goes_on(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/", status=429, headers={"Retry-After": "0"}, times=100)
    items, ctx = crawl(http_retries=1)
    got = records(items)
    assert len(got) == LISTED  # the crawl went on
    vit = got[f"hf:{VIT_ID}"]
    assert any("rate-limiting" in e for e in vit.errors)
    assert ctx.state["retry"] == [f"hf:{VIT_ID}"]  # the others were read
    assert files_of(hub, VIT_ID) == 2

    # the next sync reads it again although its sha did not change
    hub.faults.clear()
    hub.reset_counts()
    known = {r.id: r.revision for r in got.values()}
    again, ctx2 = crawl(known=known, state=dict(ctx.state))
    assert list(records(again)) == [f"hf:{VIT_ID}"] and not records(again)[f"hf:{VIT_ID}"].errors
    assert ctx2.state["retry"] == []


def test_server_error_once_is_retried(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/README.md", status=500)
    items, _ = crawl()
    vit = records(items)[f"hf:{VIT_ID}"]
    assert vit.errors == [] and files_of(hub, VIT_ID) == 2


def test_server_error_that_persists_is_an_entry_error_to_retry(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/README.md", status=503, times=100)
    items, ctx = crawl(http_retries=2)
    vit = records(items)[f"hf:{VIT_ID}"]
    assert vit.errors == [f"{VIT_ID}/README.md: HTTP 503"]
    assert vit.architecture == "ViTForImageClassification"  # from the listing
    assert ctx.state["retry"] == [f"hf:{VIT_ID}"]
    assert files_of(hub, VIT_ID) == 3  # one try and two retries: one retry layer, not two


def test_timeout_is_an_entry_error_to_retry(hub: FakeHub) -> None:
    hub.inject(rf"^/{VIT_ID}/resolve/.*/README.md", kind="stall", delay=2.0, times=100)
    items, ctx = crawl(limit=1, http_timeout=0.5, http_retries=0)
    vit = records(items)[f"hf:{VIT_ID}"]
    assert len(vit.errors) == 1 and "Timeout" in vit.errors[0]
    assert ctx.state["retry"] == [f"hf:{VIT_ID}"]


def test_truncated_listing_page_is_asked_for_again(hub: FakeHub) -> None:
    hub.inject(r"^/api/models\?.*cursor=50", kind="truncate")
    items, _ = crawl()
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)) == LISTED
    assert hub.count("listing") == PAGES + 1  # page 2 again, not the listing from the start


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


@pytest.mark.parametrize("endpoint", ["http://hub.invalid", "http://127.0.0.1:9"])
def test_unreachable_hub_fails_at_once_with_one_error(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    """No name resolution or nothing listening: one request, no retries, one error."""
    monkeypatch.setenv("SECURITYNET_HF_ENDPOINT", endpoint)
    start = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="cannot be reached") as caught:
        crawl(limit=3, http_retries=5, http_backoff=1.0)
    assert time.monotonic() - start < 2.0
    assert caught.value.hint and "SECURITYNET_OFFLINE" in caught.value.hint


def test_truncated_config_at_fill_is_an_error_not_left_pending(hub: FakeHub) -> None:
    items, _ = crawl(limit=1)
    vit = records(items)[f"hf:{VIT_ID}"]
    hub.inject(rf"^/{VIT_ID}/resolve/.*/config.json", kind="truncate", times=100)
    fill = get_scraper("hf").fill_pending(vit, get_settings())
    assert len(fill.errors) == 1 and "config.json is not valid JSON" in fill.errors[0]
    assert fill.pending == []  # the same bytes would come back
    assert fill.num_classes is None and fill.files[0].sha256 is not None


def test_fill_that_meets_a_server_error_leaves_it_pending(hub: FakeHub) -> None:
    items, _ = crawl(limit=1)
    vit = records(items)[f"hf:{VIT_ID}"]
    hub.inject(rf"^/{VIT_ID}/resolve/.*/config.json", status=503, times=100)
    fill = get_scraper("hf").fill_pending(vit, get_settings(http_retries=0))
    assert fill.pending == ["config"] and fill.errors == [f"{VIT_ID}/config.json: HTTP 503"]


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
    hub.inject(rf"^/{VIT_ID}/resolve/", status=403, times=10)
    items, ctx = crawl(limit=1)
    vit = records(items)[f"hf:{VIT_ID}"]
    assert "gated:manual" in vit.tags
    assert vit.errors == [f"{VIT_ID}/README.md: access denied (403; gated or private)"]
    assert ctx.state.get("retry", []) == []  # a token is needed, not another try
    fill = get_scraper("hf").fill_pending(vit, get_settings())
    assert fill.pending == [] and fill.errors == [
        f"{VIT_ID}/config.json: access denied (403; gated or private)",
        f"{VIT_ID}/preprocessor_config.json: access denied (403; gated or private)",
        f"{VIT_ID}/model.safetensors: access denied (403; gated or private)",
    ]


def test_timm_config_from_timm_registry_fills_the_load_spec(hub: FakeHub) -> None:
    pytest.importorskip("timm")
    from tests.fakehub import timm_config

    config = timm_config("convnext_small.fb_in1k")
    assert config is not None
    hub.set_file("timm/convnext_small.fb_in1k", "config.json", config)
    items, _ = crawl(options={"queries": [{"filter": "timm"}]}, limit=60)
    listed = records(items)["hf:timm/convnext_small.fb_in1k"]
    assert listed.num_classes is None and listed.raw["pending"] == ["config", "file-pins"]
    entry = get_scraper("hf").fill_pending(listed, get_settings())
    assert (
        entry.load is not None and entry.load.architecture == "hf-hub:timm/convnext_small.fb_in1k"
    )
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
    assert hub.count("listing") == 1 + 6  # page 1, then page 2 and our 5 retries (one layer)


def test_hf_source_implements_the_protocol(make_ctx: Any) -> None:
    from securitynet.scrapers import Scraper

    scraper = get_scraper("huggingface")
    assert isinstance(scraper, Scraper)
    assert (scraper.name, scraper.needs_network) == ("hf", True)
    assert (
        scraper.unavailable_reason(make_ctx()) == "offline (SECURITYNET_OFFLINE)"
    )  # make_ctx is offline
    assert scraper.unavailable_reason(make_ctx(offline=False)) is None


def test_stopping_the_hub_ends_its_stalled_handler_threads() -> None:
    """A handler stalled mid-request must not outlive its hub (and write to a closed socket
    while a later test runs): stop() ends the stall and joins the handler threads."""
    import threading
    import urllib.request

    fake = FakeHub().start()
    fake.inject(r"^/slow", kind="stall", delay=30.0)

    def ask() -> None:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{fake.url}/slow", timeout=0.2).read()

    client = threading.Thread(target=ask)
    client.start()
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    client.join()
    start = time.monotonic()
    fake.stop()
    assert time.monotonic() - start < 2.0
    assert not [t for t in threading.enumerate() if "process_request_thread" in t.name]
