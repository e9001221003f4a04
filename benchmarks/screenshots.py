"""Screenshots of every page type of ``securitynet serve`` over a real catalogue, taken in
headless Chromium (the system's ``chromium`` and ``chromedriver``, driven by selenium), to
look at after a change to the web view.

    SECURITYNET_HOME=/tmp/sn securitynet sync
    SECURITYNET_HOME=/tmp/sn securitynet import securitynet-release ../shared/fixtures/securitynet/Database-README.MD
    SECURITYNET_HOME=/tmp/sn securitynet eval mia ENTRY --data mnist ...      # result pages with content
    SECURITYNET_HOME=/tmp/sn python benchmarks/screenshots.py shots/

The catalogue is the default one (``SECURITYNET_DATABASE_URL`` or ``--database-url``),
opened read-only as ``serve`` opens it, served on a free loopback port. Each page is saved
as ``NN-name.png`` at full page height (capped at ``--max-height`` pixels); the page's
server time and the browser's CSP complaints (there should be none) are printed.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from securitynet.catalogue.api import Catalogue
from securitynet.web.app import create_app


def pages(cat: Catalogue) -> list[tuple[str, str]]:
    """(name, path) of each page type, picked from what the catalogue holds."""
    boards = {}
    with cat.session() as s:
        from securitynet.catalogue.leaderboards import list_boards

        boards = list_boards(s)
    out = [
        ("home", "/"),
        ("browse", "/browse"),
        ("browse-cifar10-top1", "/browse?dataset=CIFAR-10&min_top1=90&sort=top1"),
        ("browse-page2", "/browse?dataset=ImageNet-1k&page=2"),
        ("browse-pretrained", "/browse?pretrain=ImageNet-21k&dataset=ImageNet-1k&max_input_size=300"),
        ("browse-search", "/browse?q=resnet50&sort=params"),
        ("entry-timm", "/entry/timm:resnet50.a1_in1k"),
    ]
    evaluated = cat.results(source="evaluate", limit=1)
    if evaluated:
        out.append(("entry-evaluated", f"/entry/{quote(evaluated[0].entry_id, safe='/:@')}"))
    released = cat.results(source="securitynet-release", limit=1)
    if released:
        out.append(("entry-release", f"/entry/{quote(released[0].entry_id, safe='/:@')}"))
    out.append(("leaderboards", "/leaderboards"))
    for d in boards["datasets"][:2]:
        out.append((f"board-{d['dataset']}", f"/leaderboards/dataset/{quote(d['dataset'], safe='')}"))
    out.append(("board-imagenet-224", "/leaderboards/dataset/ImageNet-1k?size=224"))
    attacks = sorted({a["attack"] for a in boards["attacks"]})
    for attack in attacks:
        out.append((f"board-{attack}", f"/leaderboards/attack/{quote(attack, safe='')}"))
    ours = [a for a in boards["attacks"] if a["ours"] and a["metric"] == "auc"]
    if ours:
        a = ours[0]
        out.append(("board-ours-auc", f"/leaderboards/attack/{a['attack']}?metric=auc&dataset={quote(a['dataset'] or '')}"))
    out += [
        ("sql", "/sql?q=SELECT+*+FROM+v_entries_per_source"),
        ("sql-results", "/sql?q=SELECT+entry_id,+variant,+metric,+value,+source+FROM+v_results+WHERE+source+%3D+%27evaluate%27"),
        ("not-found", "/entry/timm:no_such_net"),
    ]
    return out


def serve(cat: Catalogue) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(create_app(cat), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise SystemExit("the server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def browser(width: int) -> Any:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        raise SystemExit("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},1000", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--database-url")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--max-height", type=int, default=2400)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    with Catalogue(args.database_url, upgrade=False) as cat:
        server, thread, base = serve(cat)
        driver = browser(args.width)
        try:
            for n, (name, path) in enumerate(pages(cat), 1):
                started = time.perf_counter()
                driver.get(base + path)
                seconds = time.perf_counter() - started
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(args.width, min(max(int(height), 600), args.max_height))
                out = args.folder / f"{n:02d}-{name.replace('/', '_')}.png"
                driver.save_screenshot(str(out))
                heading = driver.find_element(By.TAG_NAME, "h1").text
                print(f"{out.name:<36} {seconds * 1000:7.0f} ms  {path}  | h1: {heading}")
            complaints = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
            print(f"CSP complaints: {len(complaints)}")
            for c in complaints[:5]:
                print("  ", c)
        finally:
            driver.quit()
            server.should_exit = True
            thread.join(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
