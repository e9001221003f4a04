"""The web view (``securitynet serve``) through Starlette's TestClient, on the sample
catalogue (SQLite, then PostgreSQL where one is available)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

pytest.importorskip("starlette", reason="the web view needs the 'web' extra")
pytest.importorskip("jinja2", reason="the web view needs the 'web' extra")

from starlette.testclient import TestClient

from securitynet.catalogue.api import Catalogue
from securitynet.records import AccuracyClaim, EntryRecord, FileRef
from securitynet.web.app import CONTENT_SECURITY_POLICY, create_app, safe_href

SCRIPT = "<script>alert('x')</script>"
HTML = '<img src=x onerror="alert(1)"><b>bold</b>'
JS_URL = "javascript:alert(document.cookie)"


@pytest.fixture
def client(catalogue: Catalogue) -> Iterator[TestClient]:
    with TestClient(create_app(catalogue)) as test_client:
        yield test_client


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_home_counts_what_the_catalogue_holds(client: TestClient, catalogue: Catalogue) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"{catalogue.count()} entries" in page.text
    data = client.get("/index.json").json()
    assert data["entries"] == catalogue.count()
    per_source = {row["value"]: row["count"] for row in data["counts"]["source"]}
    assert per_source["imgclsmob"] == catalogue.count(source="imgclsmob")
    assert '/browse?source=imgclsmob' in page.text


def test_browse_facet_filters_and_counts(client: TestClient, catalogue: Catalogue) -> None:
    everything = client.get("/browse.json").json()
    assert everything["total"] == catalogue.count()
    cifar = client.get("/browse.json", params={"dataset": "CIFAR-10"}).json()
    assert cifar["total"] == catalogue.count(dataset="CIFAR-10") > 0
    assert {e["dataset"] for e in cifar["entries"]} == {"CIFAR-10"}
    # a facet is counted under the other filters, not its own: the other data sets stay
    datasets = {row["value"] for row in cifar["facets"]["dataset"]}
    assert "CIFAR-10" in datasets and len(datasets) > 1
    sources = {row["value"]: row["count"] for row in cifar["facets"]["source"]}
    assert sum(sources.values()) == cifar["total"]
    # the page links each facet value with the rest of the query kept
    page = client.get("/browse", params={"dataset": "CIFAR-10", "sort": "params"})
    assert page.status_code == 200
    links = [a.get("href") or "" for tag, a in tags(page.text) if tag == "a"]
    assert any("dataset=CIFAR-10" in h and "sort=params" in h and "source=" in h for h in links)


def test_browse_task_pretraining_and_input_size(client: TestClient, catalogue: Catalogue) -> None:
    everything = client.get("/browse.json").json()
    pretrained = dict((r["value"], r["count"]) for r in everything["facets"]["pretrain"])
    # the sample's ViT was pre-trained on ImageNet-21k, then fine-tuned on ImageNet-1k
    assert pretrained == {"ImageNet-21k": catalogue.count(pretrain="ImageNet-21k")} == {"ImageNet-21k": 1}
    assert {r["value"] for r in everything["facets"]["task"]} == {"image-classification"}
    vit = client.get("/browse.json", params={"pretrain": "ImageNet-21k"}).json()
    assert [e["id"] for e in vit["entries"]] == ["timm:vit_base_patch16_224.augreg_in21k_ft_in1k"]
    # picking a pre-training data set still lists the others to switch to, with counts
    assert vit["facets"]["pretrain"] == everything["facets"]["pretrain"]
    small = client.get("/browse.json", params={"max_input_size": "64"}).json()
    assert small["total"] == catalogue.count(max_input_size=64) > 0
    assert {e["input_size"] for e in small["entries"]} == {32}
    page = client.get("/browse", params={"pretrain": "ImageNet-21k"}).text
    assert "pre-training data" in page and 'name="min_input_size"' in page
    assert client.get("/browse.json", params={"min_input_size": "big"}).status_code == 400


def test_browse_ranges_sort_and_pages(client: TestClient, catalogue: Catalogue) -> None:
    data = client.get("/browse.json", params={"min_params": "1M", "sort": "+params"}).json()
    params = [e["params"] for e in data["entries"]]
    assert params == sorted(params) and all(p >= 1_000_000 for p in params)
    assert data["total"] == catalogue.count(min_params=1_000_000)
    beyond = client.get("/browse.json", params={"page": "2"}).json()
    assert beyond["entries"] == [] and beyond["page"] == 2
    bad = client.get("/browse", params={"sort": "nonsense"})
    assert bad.status_code == 400 and "unknown sort key" in bad.text
    assert client.get("/browse.json", params={"min_top1": "lots"}).status_code == 400
    csv_text = client.get("/browse.csv", params={"dataset": "CIFAR-10"}).text
    assert csv_text.splitlines()[0].startswith("id,source,name")
    assert len(csv_text.splitlines()) == 1 + catalogue.count(dataset="CIFAR-10")


def test_entry_page_shows_provenance_claims_and_files(
    client: TestClient, catalogue: Catalogue
) -> None:
    entry = catalogue.get("imgclsmob:resnet20_cifar10")
    page = client.get("/entry/imgclsmob:resnet20_cifar10")
    assert page.status_code == 200
    for claim in entry.claims:
        assert f"<td>{claim.source}</td>" in page.text
    for f in entry.files:
        assert f.url in page.text
        if f.sha256:
            assert f.sha256 in page.text
    assert "sn.load(&#39;imgclsmob:resnet20_cifar10&#39;)" in page.text
    assert "securitynet load imgclsmob:resnet20_cifar10" in page.text
    data = client.get("/entry/imgclsmob:resnet20_cifar10.json").json()
    assert data["id"] == entry.id
    assert len(data["claims"]) == len(entry.claims)
    assert {f["key"] for f in data["facts"]} == {f.key for f in entry.facts}
    missing = client.get("/entry/timm:no_such_net.json")
    assert missing.status_code == 404 and "no_such_net" in missing.json()["error"]


def test_sql_console_runs_queries_and_refuses_writes(
    client: TestClient, catalogue: Catalogue
) -> None:
    page = client.get("/sql", params={"q": "SELECT source, entries FROM v_entries_per_source"})
    assert page.status_code == 200 and "<th>entries</th>" in page.text
    data = client.get("/sql.json", params={"q": "SELECT count(*) AS n FROM entry"}).json()
    assert data["columns"] == ["n"] and data["rows"][0][0] >= catalogue.count()
    for statement in ("DELETE FROM entry", "DROP TABLE entry", "UPDATE entry SET name = 'x'"):
        refused = client.get("/sql", params={"q": statement})
        assert refused.status_code == 400 and "refused" in refused.text
        assert client.get("/sql.json", params={"q": statement}).status_code == 400
    assert catalogue.count() == client.get("/index.json").json()["entries"]  # nothing went


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/browse", "/sql", "/entry/timm:nope", "/static/style.css", "/index.json"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in CONTENT_SECURITY_POLICY  # default-src 'none' covers script
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_no_page_has_a_script_or_inline_style(client: TestClient) -> None:
    for path in ("/", "/browse", "/sql?q=SELECT+1", "/entry/imgclsmob:resnet20_cifar10"):
        found = tags(client.get(path).text)
        assert not [t for t, _ in found if t in ("script", "style", "iframe", "object")], path
        assert not [a for _, a in found if "style" in a or any(k.startswith("on") for k in a)], path


def test_untrusted_text_stays_text(client: TestClient, catalogue: Catalogue) -> None:
    evil = EntryRecord(
        id="hf:evil/net",
        architecture=SCRIPT,
        family=HTML,
        licence=SCRIPT,
        paper=JS_URL,
        upstream_url=JS_URL,
        evidence={"architecture": HTML},
        claims=[
            AccuracyClaim(dataset=HTML, value=50.0, source="hf", evidence=SCRIPT, url=JS_URL)
        ],
        files=[FileRef(url=JS_URL, filename=SCRIPT)],
    )
    catalogue.add([evil], origin="hf")
    pages = {
        "entry": client.get("/entry/hf:evil/net").text,
        "browse": client.get("/browse", params={"q": "evil"}).text,
        "facet": client.get("/browse", params={"family": HTML}).text,
        "home": client.get("/").text,
        "sql": client.get("/sql", params={"q": f"SELECT '{SCRIPT}' AS x, '{HTML}' AS y"}).text,
    }
    assert "hf:evil/net" in pages["browse"] and "hf:evil/net" in pages["facet"]
    for name, html in pages.items():
        found = tags(html)
        assert not [t for t, _ in found if t in ("script", "img", "b")], name
        hrefs = [a.get("href") or "" for t, a in found if t == "a"]
        assert not [h for h in hrefs if h.strip().lower().startswith(("javascript:", "data:"))], name
        assert "<script>" not in html and "onerror=\"" not in html, name
    entry = pages["entry"]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in entry  # shown, as text
    assert "&lt;b&gt;bold&lt;/b&gt;" in entry
    assert re.search(r'<span class="text-url">javascript:alert\(document.cookie\)</span>', entry)
    assert "&lt;script&gt;" in pages["sql"]
    # the JSON says what was stored, verbatim: escaping is the page's business (a licence is
    # stored as an SPDX id or a LicenseRef- slug, so the script reaches the page as evidence)
    stored = client.get("/entry/hf:evil/net.json").json()
    assert stored["architecture"] == SCRIPT
    assert any(c["evidence"] == SCRIPT for c in stored["claims"])


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://arxiv.org/abs/1512.03385", True),
        ("http://example.org/x", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//evil.example/x", False),
        ("https:/no-host", False),
        (None, False),
    ],
)
def test_only_http_urls_become_links(url: str | None, link: bool) -> None:
    assert (safe_href(url) is not None) is link


def test_entry_lists_entries_with_the_same_weights(client: TestClient, catalogue: Catalogue) -> None:
    from sqlalchemy import update

    from securitynet.catalogue.models import Entry

    keeper, copy = "torchvision:resnet50.IMAGENET1K_V1", "timm:resnet50.a1_in1k"
    with catalogue.session() as s, s.begin():
        s.execute(update(Entry).where(Entry.id == copy).values(same_weights_as=keeper))
    assert client.get(f"/entry/{keeper}.json").json()["same_weights"] == [copy]
    assert client.get(f"/entry/{copy}.json").json()["same_weights"] == [keeper]
    page = client.get(f"/entry/{keeper}").text
    assert f'<a href="/entry/{copy}">{copy}</a>' in page
