"""``securitynet import robustbench`` on RobustBench's real model_info files (../shared), and
one file served by a loopback HTTP server (retries, rate limit)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from securitynet.catalogue.api import Catalogue
from securitynet.errors import MalformedUpstreamError, RateLimitedError
from securitynet.records import Purpose
from securitynet.scrapers.robustbench import parse_number, parse_venue
from securitynet.settings import get_settings

MODEL_INFO = "fixtures/robustbench/model_info"
CARMON = "robustbench:cifar10/Linf/Carmon2019Unlabeled"


def test_strings_become_numbers() -> None:
    assert parse_number("8/255", what="eps") == pytest.approx(8 / 255)
    assert parse_number("68.38", what="acc") == 68.38
    assert parse_number("", what="acc") is None and parse_number("None", what="eps") is None
    assert parse_number("0.0", what="acc") == 0.0
    with pytest.raises(MalformedUpstreamError):
        parse_number("n/a%", what="acc")
    assert parse_venue("NeurIPS 2022") == ("NeurIPS", 2022)
    assert parse_venue("arXiv, Mar 2021") == ("arXiv", 2021)
    assert parse_venue("") == (None, None)


def test_the_real_model_info_folder(catalogue: Catalogue, shared_dir: Path) -> None:
    folder = shared_dir / MODEL_INFO
    files = sorted(folder.glob("*/*/*.json"))
    summary = catalogue.import_from("robustbench", str(folder))
    assert summary.added == len(files) == 236 and summary.missing == []
    raw = json.loads((folder / "cifar10/Linf/Carmon2019Unlabeled.json").read_text())
    entry = catalogue.get(CARMON)
    assert entry.top1 == pytest.approx(float(raw["clean_acc"]))
    assert (entry.purpose, entry.venue, entry.year, entry.dataset) == (
        Purpose.SECURITY,
        "NeurIPS",
        2019,
        "CIFAR-10",
    )
    facts = {f.key: f.value for f in entry.facts}
    assert facts["epsilon"] == pytest.approx(8 / 255) and facts["threat_model"] == "Linf"
    assert facts["extra_data"] is True and facts["architecture_text"] == "WideResNet-28-10"
    assert facts["weights_status"] == "not resolved"
    figures = {(r.variant, r.metric): r.value for r in catalogue.results(entry_id=CARMON)}
    assert figures == {
        ("autoattack", "accuracy"): float(raw["autoattack_acc"]),
        ("reported", "accuracy"): float(raw["reported"]),
    }
    # every stated AutoAttack accuracy is one figure, a number (RobustBench writes strings)
    stated = sum(
        1 for f in files if json.loads(f.read_text()).get("autoattack_acc", "") not in ("", None)
    )
    rows = catalogue.sql(
        "SELECT COUNT(*), MIN(value), MAX(value) FROM v_results"
        " WHERE source = 'robustbench' AND variant = 'autoattack'"
    ).rows
    assert rows[0][0] == stated and 0 <= rows[0][1] <= rows[0][2] <= 100
    # L2 threat models keep their epsilon as a number too
    l2 = sorted(folder.glob("cifar10/L2/*.json"))[0]
    l2_facts = {f.key: f.value for f in catalogue.get(f"robustbench:cifar10/L2/{l2.stem}").facts}
    assert l2_facts["threat_model"] == "L2"
    assert l2_facts["epsilon"] == pytest.approx(float(json.loads(l2.read_text())["eps"]))


class _Server:
    """Serves one JSON document; ``faults`` are statuses answered first, in order."""

    def __init__(self, body: bytes) -> None:
        self.body, self.faults, self.requests = body, [], 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if outer.faults:
                    status = outer.faults.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "60")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(shared_dir: Path) -> Iterator[_Server]:
    body = (shared_dir / MODEL_INFO / "cifar10/Linf/Carmon2019Unlabeled.json").read_bytes()
    srv = _Server(body)
    yield srv
    srv.close()


def test_one_file_by_url_retries_a_server_error(
    catalogue: Catalogue, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "0")
    server.faults = [500, 503]
    url = f"{server.url}/robustbench/master/model_info/cifar10/Linf/Carmon2019Unlabeled.json"
    with Catalogue(catalogue.url, settings=get_settings()) as cat:
        summary = cat.import_from("robustbench", url)
    assert server.requests == 3
    assert summary.added == 1 and summary.removed == 0  # one file is not the whole set
    assert catalogue.get(CARMON).top1 == pytest.approx(89.69)


def test_a_rate_limit_is_a_typed_error(
    catalogue: Catalogue, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.faults = [429]
    url = f"{server.url}/model_info/cifar10/Linf/Carmon2019Unlabeled.json"
    with pytest.raises(RateLimitedError):
        catalogue.import_from("robustbench", url)
    assert server.requests == 1
    assert catalogue.find(CARMON) is None


def _archive(folder: Path, *, skip: str | None = None) -> bytes:
    """A .tar.gz shaped like GitHub's archive of the repository (top folder, code beside)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        readme = b"# robustbench\n"
        info = tarfile.TarInfo("robustbench-master/README.md")
        info.size = len(readme)
        archive.addfile(info, io.BytesIO(readme))
        for path in sorted(folder.glob("*/*/*.json")):
            if path.stem == skip:
                continue
            archive.add(path, arcname=f"robustbench-master/model_info/{path.relative_to(folder)}")
    return buffer.getvalue()


def test_the_default_archive_url_reads_every_model(
    catalogue: Catalogue, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shared_dir / MODEL_INFO
    srv = _Server(_archive(folder))
    try:
        monkeypatch.setenv(
            "SECURITYNET_ROBUSTBENCH_MODEL_INFO",
            f"{srv.url}/RobustBench/robustbench/tar.gz/refs/heads/master",
        )
        cat = Catalogue(catalogue.url)
        summary = cat.import_from("robustbench")
        assert summary.added == 236 and srv.requests == 1
        assert cat.get(CARMON).top1 == pytest.approx(89.69)
        # the archive is the whole set: a model gone from it is marked removed
        srv.body = _archive(folder, skip="Carmon2019Unlabeled")
        again = cat.import_from("robustbench")
        assert (again.removed, again.unchanged) == (1, 235)
        assert cat.get(CARMON).removed_upstream
        srv.body = b"not a tarball"
        with pytest.raises(MalformedUpstreamError):
            cat.import_from("robustbench")
    finally:
        srv.close()
