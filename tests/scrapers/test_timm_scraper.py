"""The timm scraper: the installed registry plus timm's real results tables from ../shared."""

from __future__ import annotations

import csv
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest

from securitynet.annotate.datasets import dataset_info
from securitynet.errors import NotFoundError
from securitynet.records import EntryRecord, Metric, Stage
from securitynet.scrapers.timm import TimmScraper
from tests.fakehub import StoppableServer


@pytest.fixture(scope="module")
def timm_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures/timm"


@pytest.fixture(scope="module")
def records(make_ctx: Callable[..., Any], collect: Callable[..., Any], timm_dir: Path) -> dict[str, EntryRecord]:
    result: dict[str, EntryRecord] = collect(TimmScraper(), make_ctx(options={"timm_results": str(timm_dir)}))
    return result


def _top1(record: EntryRecord, img_size: int, dataset: str = "ImageNet-1k") -> float:
    (value,) = [
        c.value for c in record.claims if c.metric is Metric.TOP1 and c.dataset == dataset and c.img_size == img_size
    ]
    return value


def test_every_pretrained_tag_is_an_entry(records: dict[str, EntryRecord]) -> None:
    import timm

    assert len(records) >= 1800
    assert set(records) == {f"timm:{name}" for name in timm.list_pretrained()}


def test_resnet50_tv_in1k_carries_timms_measurement(records: dict[str, EntryRecord]) -> None:
    r = records["timm:resnet50.tv_in1k"]
    assert _top1(r, 224) == 76.156
    claim = next(c for c in r.claims if c.metric is Metric.TOP1 and c.dataset == "ImageNet-1k")
    assert (claim.split, claim.crop_pct, claim.source) == ("validation", 0.875, "timm-results")
    assert claim.evidence == "results-imagenet.csv row (resnet50.tv_in1k, 224) top1"
    assert _top1(r, 224, "ImageNet-ReaL") == 82.969
    assert r.params == 25_560_000 and "param_count" in r.evidence["params"]
    assert (r.architecture, r.family, r.licence, r.num_classes) == ("resnet50", "resnet", "bsd-3-clause", 1000)
    assert [(d.dataset, d.stage) for d in r.datasets] == [("ImageNet-1k", Stage.TRAIN)]
    (f,) = r.files
    assert (f.url, f.format) == ("hf://timm/resnet50.tv_in1k/model.safetensors", "safetensors")
    assert r.upstream_url == "https://huggingface.co/timm/resnet50.tv_in1k"
    assert r.load is not None
    assert (r.load.builder, r.load.architecture, r.load.input_size) == ("timm", "resnet50.tv_in1k", (3, 224, 224))
    assert (r.load.interpolation, r.load.crop_pct, r.load.crop_mode) == ("bilinear", 0.875, "center")
    assert r.load.label_set == "ImageNet-1k"


def test_each_image_size_row_is_its_own_claim(records: dict[str, EntryRecord]) -> None:
    r = records["timm:resnet50.a1_in1k"]
    assert (_top1(r, 224), _top1(r, 288)) == (80.382, 81.24)
    assert r.best_top1() == 81.24
    assert r.paper == "arXiv:2110.00476"


def test_every_row_of_results_imagenet_is_a_claim(records: dict[str, EntryRecord], timm_dir: Path) -> None:
    with (timm_dir / "results-imagenet.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1556
    for row in rows:
        record = records[f"timm:{row['model']}"]
        assert _top1(record, int(row["img_size"])) == float(row["top1"]), row["model"]


def test_quoted_param_count_parses(records: dict[str, EntryRecord]) -> None:
    assert records["timm:eva_giant_patch14_560.m30m_ft_in22k_in1k"].params == 1_014_450_000
    assert records["timm:regnety_2560.seer_ft_in1k"].params == 1_282_600_000


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        ("vit_base_patch16_224.augreg2_in21k_ft_in1k", ["ImageNet-21k", "ImageNet-1k"]),
        ("convnext_base.clip_laion2b_augreg_ft_in12k_in1k", ["LAION-2B", "ImageNet-12k", "ImageNet-1k"]),
        ("resnext101_32x8d.fb_wsl_ig1b_ft_in1k", ["Instagram-1B", "ImageNet-1k"]),
        ("regnety_1280.swag_ft_in1k", ["Instagram-3.6B", "ImageNet-1k"]),
        ("convnext_small.in12k", ["ImageNet-12k"]),
    ],
)
def test_training_chain_from_the_tag(records: dict[str, EntryRecord], name: str, chain: list[str]) -> None:
    r = records[f"timm:{name}"]
    assert [d.dataset for d in r.datasets] == chain
    assert [d.stage for d in r.datasets] == [Stage.PRETRAIN] * (len(chain) - 1) + [Stage.TRAIN]
    assert all(d.source == "timm" and name.split(".")[1] in (d.evidence or "") for d in r.datasets)


def test_distilled_weights_are_marked(records: dict[str, EntryRecord]) -> None:
    assert "distilled" in records["timm:levit_128.fb_dist_in1k"].tags  # from the tag
    assert "distilled" in records["timm:deit_base_distilled_patch16_224.fb_in1k"].tags  # from the architecture
    assert "distilled" not in records["timm:deit3_base_patch16_224.fb_in22k_ft_in1k"].tags


def test_clip_towers_are_feature_extractors(records: dict[str, EntryRecord]) -> None:
    r = records["timm:vit_base_patch16_clip_224.openai"]
    assert r.task == "image-feature-extraction"
    assert r.num_classes is None  # 512 is an embedding, not a label set
    assert r.final_dataset == "OpenAI-WIT"
    assert r.load is not None and r.load.num_classes == 512 and r.load.label_set is None
    assert records["timm:vit_base_patch16_224.mae"].task == "image-feature-extraction"
    # a CLIP tower fine-tuned on ImageNet is a classifier again
    tuned = records["timm:vit_base_patch16_clip_224.openai_ft_in1k"]
    assert (tuned.task, tuned.num_classes, tuned.final_dataset) == ("image-classification", 1000, "ImageNet-1k")


def test_weights_outside_the_hub_keep_their_url_and_hash(records: dict[str, EntryRecord]) -> None:
    (f,) = records["timm:gcvit_base.in1k"].files
    assert f.url.endswith("/gcvit_base_224_nvidia-f009139b.pth")
    assert (f.checksum, f.checksum_algo, f.format) == ("f009139b", "sha256-prefix", "pytorch")


def test_legacy_metadata_agrees_with_the_tag_grammar(records: dict[str, EntryRecord]) -> None:
    expected = {"in21k": "ImageNet-21k", "ig1b": "Instagram-1B", "jft300m": "JFT-300M", "yfc": "YFCC100M"}
    matched = [r for r in records.values() if "model_metadata" in r.raw]
    assert len(matched) > 400
    for r in matched:
        pretrain = r.raw["model_metadata"]["pretrain"]
        source = pretrain.split("-")[0]
        if source in expected:  # a release of the named corpus (ImageNet-21K-P) counts
            named = [d.dataset for d in r.datasets[:-1]]
            named += [info.variant_of for d in named if (info := dataset_info(d)) and info.variant_of]
            assert expected[source] in named, r.id
        if pretrain.endswith("-dist"):
            assert "distilled" in r.tags, r.id
        if pretrain.endswith(("-adv", "-ap")):
            assert "adversarial-training" in r.tags, r.id


def test_every_entry_is_consistent_and_json_clean(records: dict[str, EntryRecord]) -> None:
    for r in records.values():
        json.dumps(r.raw, allow_nan=False)
        assert r.load is not None and r.load.architecture == r.name
        assert r.files, r.id
        if r.datasets:
            assert [d.stage for d in r.datasets][-1] is Stage.TRAIN
        if r.task == "image-classification":
            assert r.num_classes and r.final_dataset and r.load.label_set == r.final_dataset, r.id


def test_limit_is_honoured(make_ctx: Callable[..., Any], timm_dir: Path) -> None:
    ctx = make_ctx(limit=7, options={"timm_results": str(timm_dir)})
    assert len(list(TimmScraper().iter_records(ctx))) == 7


def test_a_missing_folder_given_fails_instead_of_dropping_claims(
    make_ctx: Callable[..., Any], tmp_path: Path
) -> None:
    ctx = make_ctx(limit=5, options={"timm_results": str(tmp_path / "absent")})
    with pytest.raises(NotFoundError, match="no timm results") as info:
        list(TimmScraper().iter_records(ctx))
    assert "shipped with securitynet" in (info.value.hint or "")
    assert TimmScraper().fingerprint(ctx) is None  # the sync runs, and fails with the reason


def test_offline_without_folder_reads_the_packaged_snapshot(make_ctx: Callable[..., Any]) -> None:
    ctx = make_ctx(limit=2000)
    out = {r.id: r for r in TimmScraper().iter_records(ctx) if isinstance(r, EntryRecord)}
    assert _top1(out["timm:resnet50.tv_in1k"], 224) == 76.156
    state = ctx.state["timm_results"]
    assert (state["status"], state["kind"]) == ("ok", "snapshot")
    assert "aa4b585" in state["origin"]
    assert "snapshot" in (TimmScraper().fingerprint(ctx) or "")


def test_the_snapshot_is_timms_own_files(timm_dir: Path) -> None:
    from securitynet.scrapers.timm_tables import SNAPSHOT_DIR

    shipped = sorted(p.name for p in SNAPSHOT_DIR.glob("*.csv"))
    assert shipped == sorted(p.name for p in timm_dir.glob("*.csv"))
    for name in shipped:
        assert (SNAPSHOT_DIR / name).read_bytes() == (timm_dir / name).read_bytes(), name
    provenance = (SNAPSHOT_DIR / "PROVENANCE.md").read_text()
    assert "aa4b585" in provenance and "Apache-2.0" in provenance


def test_the_folder_of_the_last_sync_is_read_again_and_never_silently_dropped(
    make_ctx: Callable[..., Any], timm_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "results-imagenet.csv").write_bytes((timm_dir / "results-imagenet.csv").read_bytes())
    first = make_ctx(limit=3, options={"timm_results": str(folder)})
    list(TimmScraper().iter_records(first))
    assert first.state["timm_results"]["kind"] == "folder"

    again = make_ctx(limit=3)
    again.state.update(first.state)  # what the next sync finds in its last run
    list(TimmScraper().iter_records(again))
    assert again.state["timm_results"]["origin"] == str(folder.resolve())

    (folder / "results-imagenet.csv").unlink()
    gone = make_ctx(limit=3)
    gone.state.update(first.state)
    with pytest.raises(NotFoundError, match="is gone"):
        list(TimmScraper().iter_records(gone))


# --- fetching the tables over HTTP (a loopback server, no network) -------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the fixtures folder; the first GET of each path in ``fail_first`` gets a 503."""

    fail_first: ClassVar[set[str]] = set()
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name in self.fail_first:
            self.fail_first.discard(name)
            self.send_error(503)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(timm_dir: Path) -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"fail_first": {"results-imagenet.csv"}, "seen": []})
    httpd = StoppableServer(("127.0.0.1", 0), partial(handler, directory=str(timm_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.stop()


def test_online_sync_fetches_the_tables(make_ctx: Callable[..., Any], server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    ctx = make_ctx(offline=False, timm_results_url=url, http_retries=2, http_timeout=5, limit=2000)
    out = {r.id: r for r in TimmScraper().iter_records(ctx) if isinstance(r, EntryRecord)}
    assert _top1(out["timm:resnet50.tv_in1k"], 224) == 76.156
    assert ctx.state["timm_results"]["status"] == "ok"
    assert ctx.state["timm_results"]["tables"] == ["results-imagenet.csv", "results-imagenet-real.csv"]
    assert handler.seen.count("/results-imagenet.csv") == 2  # a 503, then the retry
    assert "/results-sketch.csv" in handler.seen  # absent upstream (404): skipped, not fatal


def test_online_sync_keeps_a_copy_for_offline_and_falls_back_to_it(
    make_ctx: Callable[..., Any], server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    home = tmp_path / "home"
    ctx = make_ctx(offline=False, timm_results_url=url, http_retries=2, http_timeout=5, limit=2, home=home)
    list(TimmScraper().iter_records(ctx))
    assert (home / "timm-results" / "results-imagenet.csv").is_file()

    handler.fail_first = {"results-imagenet.csv", "results-imagenet-real.csv"}
    failing = make_ctx(offline=False, timm_results_url=url, http_retries=0, http_timeout=5, limit=2000, home=home)
    out = {r.id: r for r in TimmScraper().iter_records(failing) if isinstance(r, EntryRecord)}
    assert _top1(out["timm:resnet50.tv_in1k"], 224) == 76.156
    state = failing.state["timm_results"]
    assert (state["status"], state["kind"]) == ("ok", "fetched")
    assert "HTTP 503" in state["note"]


def test_online_sync_without_a_copy_falls_back_to_the_snapshot(
    make_ctx: Callable[..., Any], server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, _handler = server
    ctx = make_ctx(
        offline=False, timm_results_url=url, http_retries=0, http_timeout=5, limit=3, home=tmp_path / "h"
    )
    out = list(TimmScraper().iter_records(ctx))
    assert len(out) == 3
    assert ctx.state["timm_results"]["kind"] == "snapshot"
    assert "HTTP 503" in ctx.state["timm_results"]["note"]


def test_no_network_is_recognised_at_once(make_ctx: Callable[..., Any], tmp_path: Path) -> None:
    import time

    ctx = make_ctx(
        offline=False,
        timm_results_url="https://unresolvable.invalid/results",
        http_retries=5,
        limit=1,
        home=tmp_path / "h",
    )
    started = time.perf_counter()
    list(TimmScraper().iter_records(ctx))
    assert time.perf_counter() - started < 5
    assert "no network" in ctx.state["timm_results"]["note"]


@pytest.mark.parametrize(
    ("entry_id", "chain"),
    [
        ("timm:vit_base_patch16_clip_224.dfn2b", ["DFN-2B"]),
        ("timm:vit_huge_patch14_clip_224.dfn5b", ["DFN-5B"]),
        ("timm:mixer_b16_224.miil_in21k", ["ImageNet-21K-P"]),
        ("timm:vit_base_patch16_224_miil.in21k", ["ImageNet-21K-P"]),
        ("timm:mvitv2_base_cls.fb_inw21k", ["ImageNet-21k-Winter21"]),
        ("timm:vit_base_patch16_224.augreg_in21k", ["ImageNet-21k"]),
    ],
)
def test_corpora_and_imagenet_21k_releases_are_told_apart(
    records: dict[str, EntryRecord], entry_id: str, chain: list[str]
) -> None:
    from securitynet.annotate.datasets import dataset_info

    r = records[entry_id]
    assert [d.dataset for d in r.datasets] == chain
    info = dataset_info(chain[-1])
    assert info is not None
    if r.num_classes is not None:  # a classifier's head matches its data set's label set
        assert r.num_classes == info.num_classes
        assert r.load is not None and r.load.label_set == chain[-1]


def test_contrastive_image_text_follows_the_training_data(records: dict[str, EntryRecord]) -> None:
    from securitynet.annotate.datasets import dataset_info

    def on_image_text(r: EntryRecord) -> bool:
        return any((info := dataset_info(d.dataset)) is not None and info.kind == "image-text" for d in r.datasets)

    trained = [r for r in records.values() if on_image_text(r)]
    assert len(trained) > 150
    assert all("contrastive-image-text" in r.tags for r in trained)
    # not spelled 'clip' anywhere in the tag: the data set says it
    assert "contrastive-image-text" in records["timm:vit_base_patch16_siglip_224.webli"].tags
    assert "contrastive-image-text" not in records["timm:resnet50.a1_in1k"].tags


def test_timm_test_nets_are_marked(records: dict[str, EntryRecord]) -> None:
    marked = {i for i, r in records.items() if "test-net" in r.tags}
    assert "timm:test_vit.r160_in1k" in marked
    assert marked == {i for i in records if i.startswith("timm:test_")}
