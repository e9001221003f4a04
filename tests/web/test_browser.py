"""The web view in a real browser: headless Chromium from the system's packages, driven by
selenium through the system chromedriver (nothing is downloaded at run time). Skipped, with
the reason, where chromium, chromedriver or selenium are absent; `.ci/run` installs them.

Screenshots of each page go to the session's ``web-screenshots`` folder (its path is printed
in the test's output, kept by pytest among its temporary folders).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

uvicorn = pytest.importorskip("uvicorn", reason="the web view needs the 'web' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from securitynet.catalogue.api import Catalogue  # noqa: E402
from securitynet.records import AccuracyClaim, EntryRecord, EvaluationRecord, FileRef, MetricResult  # noqa: E402
from securitynet.web.app import create_app  # noqa: E402

SCRIPT = "<script>alert('x')</script>"
JS_URL = "javascript:alert(document.cookie)"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium tests need chromium and chromium-driver (apt-get install)")
    return browser, driver


@pytest.fixture(scope="module")
def base_url(sample_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sample catalogue plus one hostile entry, served on a free loopback port."""
    _chromium()
    path = tmp_path_factory.mktemp("web") / "catalogue.db"
    shutil.copyfile(sample_sqlite_file, path)
    url = f"sqlite:///{path}"
    with Catalogue(url) as cat:
        cat.add(
            [
                EntryRecord(
                    id="hf:evil/net",
                    architecture=SCRIPT,
                    family='<img src=x onerror="alert(1)">',
                    upstream_url=JS_URL,
                    claims=[AccuracyClaim(dataset="CIFAR-10", value=50.0, source="hf", evidence=SCRIPT)],
                    files=[FileRef(url=JS_URL)],
                )
            ],
            origin="hf",
        )
        for source, value in (("securitynet-release", 0.58), ("evaluate", 0.63)):
            cat.add_evaluation(
                "imgclsmob:resnet20_cifar10",
                EvaluationRecord(
                    attack="mia", variant="modified-entropy", dataset="CIFAR-10", source=source,
                    metrics=[MetricResult(metric="auc", value=value)],
                ),
            )  # fmt: skip
    with Catalogue(url, upgrade=False) as cat:
        server = uvicorn.Server(
            uvicorn.Config(create_app(cat), host="127.0.0.1", port=0, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the server did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(base_url: str) -> Iterator[Any]:
    binary, driver_path = _chromium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-screenshots")
    print(f"screenshots: {folder}")
    return folder


def _shot(browser: Any, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000


def _no_alert(browser: Any) -> None:
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018  (reading it is the check)


def _csp_complaints(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]


def test_each_page_type_loads_styled_and_without_csp_complaints(
    browser: Any, base_url: str, shots: Path
) -> None:
    for name, path, heading in [
        ("home", "/", "The catalogue"),
        ("browse", "/browse", "Browse"),
        ("entry", "/entry/imgclsmob:resnet20_cifar10", "imgclsmob:resnet20_cifar10"),
        ("sql", "/sql?q=SELECT+*+FROM+v_entries_per_source", "SQL"),
        ("leaderboards", "/leaderboards", "Leaderboards"),
        ("board-dataset", "/leaderboards/dataset/CIFAR-10", "Top-1 on CIFAR-10"),
        ("board-attack", "/leaderboards/attack/mia", "mia"),
    ]:
        browser.get(base_url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading, name
        # the stylesheet applied under the CSP: the header has its dark background
        header = browser.find_element(By.TAG_NAME, "header")
        assert header.value_of_css_property("background-color") == "rgba(31, 41, 51, 1)", name
        _shot(browser, shots, name)
    assert _csp_complaints(browser) == []


def test_facet_entry_and_permalink(browser: Any, base_url: str, shots: Path) -> None:
    browser.get(base_url + "/browse")
    everything = browser.find_element(By.ID, "total").text
    facet = browser.find_element(By.ID, "facet-dataset")
    facet.find_element(By.LINK_TEXT, "CIFAR-10").click()
    assert parse_qs(urlsplit(browser.current_url).query)["dataset"] == ["CIFAR-10"]
    narrowed = browser.find_element(By.ID, "total").text
    assert narrowed != everything
    rows = browser.find_elements(By.CSS_SELECTOR, "#entries tbody tr")
    assert rows and all(r.find_elements(By.TAG_NAME, "td")[1].text == "CIFAR-10" for r in rows)
    _shot(browser, shots, "browse-cifar10")
    permalink = browser.current_url
    ids = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#entries tbody td:first-child a")]
    first = browser.find_element(By.CSS_SELECTOR, "#entries tbody td:first-child a")
    first.click()
    assert browser.find_element(By.ID, "entry-id").text == ids[0]
    assert browser.find_elements(By.CSS_SELECTOR, "#claims tbody tr")
    # the permalink, opened afresh, gives the same view
    browser.get(base_url + "/")
    browser.get(permalink)
    assert browser.find_element(By.ID, "total").text == narrowed
    again = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#entries tbody td:first-child a")]
    assert again == ids


def test_pretraining_facet_and_input_size_range(browser: Any, base_url: str, shots: Path) -> None:
    browser.get(base_url + "/browse")
    facet = browser.find_element(By.ID, "facet-pretrain")
    assert facet.find_element(By.TAG_NAME, "h2").text.lower() == "pre-training data"  # CSS capitalises
    facet.find_element(By.LINK_TEXT, "ImageNet-21k").click()
    assert parse_qs(urlsplit(browser.current_url).query)["pretrain"] == ["ImageNet-21k"]
    ids = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#entries tbody td:first-child a")]
    assert ids == ["timm:vit_base_patch16_224.augreg_in21k_ft_in1k"]
    _shot(browser, shots, "browse-pretrain")
    # the range form keeps the facet picked: nothing pre-trained on ImageNet-21k is that small
    browser.find_element(By.NAME, "max_input_size").send_keys("64")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    query = parse_qs(urlsplit(browser.current_url).query)
    assert query["pretrain"] == ["ImageNet-21k"] and query["max_input_size"] == ["64"]
    assert browser.find_element(By.ID, "total").text.startswith("0 entries")


def test_sql_console_in_the_browser(browser: Any, base_url: str, shots: Path) -> None:
    browser.get(base_url + "/sql")
    box = browser.find_element(By.NAME, "q")
    box.clear()
    box.send_keys("SELECT source, count(*) AS n FROM entry GROUP BY source ORDER BY source")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # the click returns before the next page has loaded: wait for its result table
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#rows thead th"))
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#rows thead th")]
    assert headers == ["source", "n"]
    sources = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#rows tbody td:first-child")]
    assert "imgclsmob" in sources and "timm" in sources
    _shot(browser, shots, "sql-result")
    browser.get(base_url + "/sql?q=DELETE+FROM+entry")
    assert "refused" in browser.find_element(By.ID, "error").text
    _shot(browser, shots, "sql-refused")


def test_hostile_entry_stays_text_in_the_browser(browser: Any, base_url: str, shots: Path) -> None:
    browser.get(base_url + "/entry/hf:evil/net")
    _no_alert(browser)
    summary = {
        row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text
        for row in browser.find_elements(By.CSS_SELECTOR, "#summary tr")
    }
    assert summary["architecture"] == SCRIPT
    assert summary["upstream"] == JS_URL
    hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.TAG_NAME, "a")]
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    _shot(browser, shots, "entry-hostile")
    browser.get(base_url + "/browse?q=evil")
    _no_alert(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []


def _figures_drawn(browser: Any) -> list[Any]:
    images = browser.find_elements(By.CSS_SELECTOR, "img.figure")
    for image in images:  # loaded and decoded under the page's CSP (img-src 'self')
        assert image.get_property("complete") and image.get_property("naturalWidth") > 100, image.get_attribute("src")
    return images


def test_leaderboards_with_figures_in_the_browser(browser: Any, base_url: str, shots: Path) -> None:
    browser.get(base_url + "/")
    browser.find_element(By.LINK_TEXT, "Leaderboards").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Leaderboards"
    assert _figures_drawn(browser)
    _shot(browser, shots, "leaderboards-index")
    board = browser.find_element(By.ID, "dataset-boards")
    board.find_element(By.LINK_TEXT, "CIFAR-10").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Top-1 on CIFAR-10"
    assert _figures_drawn(browser)
    ranked = browser.find_elements(By.CSS_SELECTOR, "table.ranking tbody tr")
    assert ranked and all(r.find_elements(By.CSS_SELECTOR, ".kind") for r in ranked)
    _shot(browser, shots, "leaderboard-cifar10")
    browser.get(base_url + "/leaderboards/attack/mia?metric=auc&dataset=CIFAR-10")
    assert _figures_drawn(browser)
    row = next(
        r for r in browser.find_elements(By.CSS_SELECTOR, "table.ranking tbody tr")
        if "imgclsmob:resnet20_cifar10" in r.text
    )  # fmt: skip
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert "0.63" in cells and "0.58" in cells and "+0.05" in cells and "securitynet-release" in cells
    _shot(browser, shots, "leaderboard-mia-auc")
    row.find_element(By.TAG_NAME, "a").click()
    assert browser.find_element(By.ID, "entry-id").text == "imgclsmob:resnet20_cifar10"
    assert _csp_complaints(browser) == []
