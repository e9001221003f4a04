"""Leaderboards, figures and the CSV of every page, through Starlette's TestClient on the
sample catalogue (SQLite, then PostgreSQL where one is available)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest

pytest.importorskip("starlette", reason="the web view needs the 'web' extra")
pytest.importorskip("jinja2", reason="the web view needs the 'web' extra")

from starlette.testclient import TestClient

from securitynet.catalogue.api import Catalogue
from securitynet.records import (
    AccuracyClaim,
    ClaimKind,
    DatasetLink,
    EntryRecord,
    EvaluationRecord,
    MetricResult,
)
from securitynet.web.app import create_app
from tests.web.test_web import HTML, SCRIPT, tags

ENTRY = "imgclsmob:resnet20_cifar10"
RELEASE = "securitynet-release"


@pytest.fixture
def client(catalogue: Catalogue) -> Iterator[TestClient]:
    with TestClient(create_app(catalogue)) as test_client:
        yield test_client


def rows(response: object) -> list[dict[str, str]]:
    text = response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("text/csv")  # type: ignore[attr-defined]
    return list(csv.DictReader(io.StringIO(text)))


def _figures(catalogue: Catalogue) -> None:
    """The release's published AUC beside two runs of ours on one entry, and a measured
    top-1 beside the claimed one."""
    catalogue.add_evaluation(
        ENTRY,
        EvaluationRecord(
            attack="mia", variant="modified-entropy", dataset="CIFAR-10", source=RELEASE,
            metrics=[MetricResult(metric="auc", value=0.60)],
        ),
    )  # fmt: skip
    for value in (0.70, 0.65):  # the newer run counts
        catalogue.add_evaluation(
            ENTRY,
            EvaluationRecord(
                attack="mia", variant="modified_entropy", dataset="CIFAR-10",
                metrics=[MetricResult(metric="auc", value=value, lower=value - 0.02, upper=value + 0.02)],
            ),
        )  # fmt: skip
    catalogue.add_evaluation(
        "timm:resnet50.a1_in1k",
        EvaluationRecord(
            attack="mia", variant="confidence", dataset="ImageNet-1k", source=RELEASE,
            metrics=[MetricResult(metric="auc", value=0.55)],
        ),
    )  # fmt: skip


def test_dataset_board_ranks_top1_per_resolution_with_sources(
    client: TestClient, catalogue: Catalogue
) -> None:
    entry = catalogue.get(ENTRY)
    claimed = max(c.value for c in entry.claims if c.dataset == "CIFAR-10" and c.split != "train")
    measured = AccuracyClaim(dataset="CIFAR-10", split="test", value=claimed - 1.5, kind=ClaimKind.MEASURED, source="evaluate")
    catalogue.add([entry.model_copy(update={"claims": [*entry.claims, measured]})], origin="imgclsmob")

    data = client.get("/leaderboards/dataset/CIFAR-10.json").json()
    rows_ = [r for sec in data["sections"] for r in sec["rows"] if r["entry_id"] == ENTRY]
    assert len(rows_) == 1
    row = rows_[0]
    assert row["claimed"] == pytest.approx(claimed) and row["measured"] == pytest.approx(claimed - 1.5)
    assert row["ranked_by"] == "measured" and row["measured_source"] == "evaluate"
    assert row["claimed_source"] == next(c.source for c in entry.claims if c.value == claimed)
    for sec in data["sections"]:  # best first within each resolution
        ranked = [r["measured"] if r["measured"] is not None else r["claimed"] for r in sec["rows"]]
        assert ranked == sorted(ranked, reverse=True)
    total = sum(sec["total"] for sec in data["sections"])
    listed = {r["entry_id"] for sec in data["sections"] for r in sec["rows"]}
    assert len(listed) <= total

    page = client.get("/leaderboards/dataset/CIFAR-10")
    assert page.status_code == 200 and "Top-1 on CIFAR-10" in page.text
    assert f'<a href="/entry/{ENTRY}">{ENTRY}</a>' in page.text
    assert 'class="kind kind-measured"' in page.text
    assert '<img class="figure" src="/figures/top1.svg?by=family&amp;dataset=CIFAR-10"' in page.text

    table = rows(client.get("/leaderboards/dataset/CIFAR-10.csv"))
    mine = [r for r in table if r["entry_id"] == ENTRY]
    assert mine and mine[0]["ranked_by"] == "measured" and float(mine[0]["claimed"]) == pytest.approx(claimed)
    assert sum(1 for _ in table) == sum(len(sec["rows"]) for sec in data["sections"])

    missing = client.get("/leaderboards/dataset/No-Such-Set.json")
    assert missing.status_code == 404 and "No-Such-Set" in missing.json()["error"]
    assert client.get("/leaderboards/dataset/CIFAR-10.json", params={"size": "big"}).status_code == 400


def test_dataset_board_picks_one_resolution(client: TestClient) -> None:
    everything = client.get("/leaderboards/dataset/ImageNet-1k.json").json()
    sizes = [r["img_size"] for r in everything["resolutions"]]
    assert sizes and not everything["picked"]
    size = sizes[0]
    one = client.get("/leaderboards/dataset/ImageNet-1k.json", params={"size": str(size if size is not None else "none")}).json()
    assert one["picked"] and [s["key"]["img_size"] for s in one["sections"]] == [size]
    assert len(one["sections"][0]["rows"]) == one["sections"][0]["total"]


def test_attack_board_puts_ours_beside_the_published_figure(
    client: TestClient, catalogue: Catalogue
) -> None:
    _figures(catalogue)
    data = client.get("/leaderboards/attack/mia.json").json()
    sections = {s["title"]: s for s in data["sections"]}
    # the sample's own figures (tpr_at_1pct_fpr on CIFAR-10) and ours: a section each
    assert list(sections) == ["auc on CIFAR-10", "auc on ImageNet-1k", "tpr_at_1pct_fpr on CIFAR-10"]
    cifar = sections["auc on CIFAR-10"]["rows"]
    assert [r["entry_id"] for r in cifar].count(ENTRY) == 1  # ours and the release's, "_" = "-"
    row = next(r for r in cifar if r["entry_id"] == ENTRY)
    assert row["ours"] == pytest.approx(0.65) and row["ours_lower"] == pytest.approx(0.63)
    assert row["published"] == pytest.approx(0.60) and row["published_source"] == RELEASE
    assert row["difference"] == pytest.approx(0.05)
    ranked = [r["ours"] if r["ours"] is not None else r["published"] for r in cifar]
    assert ranked == sorted(ranked, reverse=True)
    imagenet = sections["auc on ImageNet-1k"]["rows"]
    assert [(r["entry_id"], r["ours"], r["published"]) for r in imagenet] == [("timm:resnet50.a1_in1k", None, 0.55)]
    assert "timm:resnet18.gone_in1k" not in str(data)  # removed upstream: not on a board

    page = client.get("/leaderboards/attack/mia").text
    assert "+0.05" in page and RELEASE in page
    figures = [a["src"] for t, a in tags(page) if t == "img"]
    assert figures == ["/figures/results.svg?attack=mia&metric=auc"]

    table = rows(client.get("/leaderboards/attack/mia.csv"))
    assert len(table) == sum(s["total"] for s in data["sections"])
    mine = next(r for r in table if r["entry_id"] == ENTRY and r["metric"] == "auc")
    assert float(mine["difference"]) == pytest.approx(0.05) and mine["published_source"] == RELEASE
    other = next(r for r in table if r["dataset"] == "ImageNet-1k")
    assert other["ours"] == "" and float(other["published"]) == 0.55

    picked = client.get("/leaderboards/attack/mia.json", params={"metric": "auc", "dataset": "ImageNet-1k"}).json()
    assert [s["title"] for s in picked["sections"]] == ["auc on ImageNet-1k"]
    assert client.get("/leaderboards/attack/stealing.json").status_code == 404


def test_leaderboard_index_and_links_from_home_and_entry(
    client: TestClient, catalogue: Catalogue
) -> None:
    _figures(catalogue)
    data = client.get("/leaderboards.json").json()
    datasets = {d["dataset"]: d["entries"] for d in data["datasets"]}
    assert datasets["CIFAR-10"] >= 1 and "ImageNet-1k" in datasets
    auc = {a["dataset"]: a for a in data["attacks"] if a["attack"] == "mia" and a["metric"] == "auc"}
    assert (auc["ImageNet-1k"]["ours"], auc["ImageNet-1k"]["published"]) == (0, 1)
    assert auc["CIFAR-10"]["ours"] >= 2 and auc["CIFAR-10"]["published"] >= 1
    page = client.get("/leaderboards").text
    hrefs = [a.get("href") or "" for t, a in tags(page) if t == "a"]
    assert "/leaderboards/dataset/CIFAR-10" in hrefs and "/leaderboards/attack/mia" in hrefs
    table = rows(client.get("/leaderboards.csv"))
    assert {"dataset", "attack"} == {r["board"] for r in table}
    assert '<a href="/leaderboards">' in client.get("/").text
    entry_page = client.get(f"/entry/{ENTRY}").text
    assert '<a href="/leaderboards/dataset/CIFAR-10">' in entry_page
    assert '<a href="/leaderboards/attack/mia">' in entry_page


def test_figures_are_svg_cached_per_catalogue_state(client: TestClient, catalogue: Catalogue) -> None:
    first = client.get("/figures/top1.svg", params={"by": "family", "dataset": "ImageNet-1k"})
    assert first.status_code == 200 and first.headers["content-type"] == "image/svg+xml"
    assert "script" not in first.headers["content-security-policy"]
    svg = ElementTree.fromstring(first.content)
    assert svg.tag.endswith("svg")
    assert not [e for e in svg.iter() if e.tag.endswith("script")]
    assert b"trained on ImageNet-1k" in first.content and b"trained on CIFAR-10" not in first.content
    assert b"top-1 accuracy (%) per family" in first.content
    again = client.get("/figures/top1.svg", params={"by": "family", "dataset": "ImageNet-1k"})
    assert again.content == first.content
    # a new claim changes the catalogue's state: the figure is drawn again, with it
    catalogue.add(
        [
            EntryRecord(
                id="hf:someone/newfamily-net", family="brandnewfamily",
                datasets=[DatasetLink(dataset="ImageNet-1k", source="hf")],
                claims=[AccuracyClaim(dataset="ImageNet-1k", value=99.0, source="hf")],
            )
        ],
        origin="hf",
    )
    redrawn = client.get("/figures/top1.svg", params={"by": "family", "dataset": "ImageNet-1k"})
    assert b"brandnewfamily" in redrawn.content and b"brandnewfamily" not in first.content
    _figures(catalogue)
    results = client.get("/figures/results.svg", params={"attack": "mia", "metric": "auc"})
    assert results.status_code == 200
    assert b"modified_entropy (evaluate)" in results.content and b"evaluated on CIFAR-10" in results.content
    assert client.get("/figures/pie.svg").status_code == 400
    assert client.get("/figures/top1.svg", params={"by": "colour"}).status_code == 400
    assert client.get("/figures/results.svg").status_code == 400


def test_hostile_names_stay_text_on_boards_and_figures(client: TestClient, catalogue: Catalogue) -> None:
    catalogue.add(
        [EntryRecord(id="hf:evil/board", family=SCRIPT, datasets=[DatasetLink(dataset="CIFAR-10", source="hf")], claims=[AccuracyClaim(dataset="CIFAR-10", value=99.9, source="hf", evidence=HTML)])],
        origin="hf",
    )
    catalogue.add_evaluation(
        "hf:evil/board",
        EvaluationRecord(attack="mia", variant=SCRIPT, dataset="CIFAR-10", metrics=[MetricResult(metric="auc", value=0.9)]),
    )
    for path in ("/leaderboards/dataset/CIFAR-10", "/leaderboards/attack/mia", "/leaderboards"):
        html = client.get(path).text
        assert "<script>" not in html and not [t for t, _ in tags(html) if t in ("script", "b")], path
    assert "&lt;script&gt;" in client.get("/leaderboards/attack/mia").text
    svg = client.get("/figures/top1.svg", params={"by": "family", "dataset": "CIFAR-10"}).content
    tree = ElementTree.fromstring(svg)  # the name is text inside the figure, not markup
    assert not [e for e in tree.iter() if e.tag.endswith("script")]
    assert b"&lt;script&gt;" in svg


def test_home_and_entry_pages_as_csv(client: TestClient, catalogue: Catalogue) -> None:
    home = rows(client.get("/index.csv"))
    per_source = {r["value"]: int(r["entries"]) for r in home if r["facet"] == "source"}
    assert per_source["imgclsmob"] == catalogue.count(source="imgclsmob")
    assert {r["facet"] for r in home} == {"source", "dataset", "family"}
    _figures(catalogue)
    entry = catalogue.get(ENTRY)
    facts = rows(client.get(f"/entry/{ENTRY}.csv"))
    sections = {r["section"] for r in facts}
    assert {"summary", "file", "evaluation"} <= sections and any(s.startswith("claim:") for s in sections)
    assert {r["key"] for r in facts if r["section"] == "fact"} == {f.key for f in entry.facts}
    claims = [r for r in facts if r["section"].startswith("claim:")]
    assert len(claims) == len(entry.claims)
    assert {(r["source"], float(r["value"])) for r in claims} == {(c.source, c.value) for c in entry.claims}
    figures = [r for r in facts if r["section"] == "evaluation"]
    assert {r["source"] for r in figures} == {"evaluate", RELEASE}
    assert any(r["key"] == "mia/modified-entropy auc on CIFAR-10" and float(r["value"]) == 0.6 for r in figures)
    summary = {r["key"]: r["value"] for r in facts if r["section"] == "summary"}
    assert summary["dataset"] == entry.dataset


def test_serve_counts_home_and_browse_ahead(catalogue: Catalogue, caplog: pytest.LogCaptureFixture) -> None:
    import time

    caplog.set_level("INFO", logger="securitynet.web.app")
    with TestClient(create_app(catalogue, warm=True)) as client:
        deadline = time.monotonic() + 60
        while "counted ahead" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "home and browse counted ahead" in caplog.text
        assert client.get("/index.json").json()["entries"] == catalogue.count()
        # a change to the catalogue is seen at once: the kept counts belong to the old state
        catalogue.add([EntryRecord(id="hf:someone/late-net")], origin="hf")
        assert client.get("/browse.json").json()["total"] == catalogue.count()
