"""``securitynet sync --source zenodo`` against a loopback Zenodo REST API.

The responses are BUILT here, not recorded: they follow the shape of Zenodo's
``GET /api/records/<id>`` as published (a record with ``id``, ``doi``, ``metadata``
{``title``, ``license`` {``id``}, ...}, ``links`` {``self_html``, ...} and ``files``, each
file with ``key``, ``size``, ``checksum`` ``"md5:<hex>"`` and ``links.self``; checked with
the search tool against a public recorded response of the legacy API, whose file links are
``/api/files/<bucket>/<key>``, and today's InvenioRDM shape, ``/records/<id>/files/<key>/content``).
The record id is the MedMNIST v2 record the SecurityNet release links; its file names,
sizes and checksums here are invented.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from securitynet.catalogue.api import Catalogue
from securitynet.scrapers.zenodo import load_manifest

RECORD = 10519652


def _record(base: str) -> dict[str, Any]:
    files = [
        ("weights_bloodmnist.zip", 94_371_840, "0f" * 16, "content"),
        ("weights_organmnist3d.zip", 812_345_678, "a1" * 16, "legacy"),
        ("README.md", 2_048, "b2" * 16, "content"),  # not a checkpoint: not an entry
    ]
    return {
        "id": RECORD,
        "doi": f"10.5281/zenodo.{RECORD}",
        "updated": "2024-01-16T09:12:33.123456+00:00",
        "metadata": {
            "title": "MedMNIST v2 model weights",
            "license": {"id": "cc-by-4.0"},
            "publication_date": "2024-01-16",
            "creators": [{"name": "Yang, Jiancheng"}],
        },
        "links": {
            "self": f"{base}/api/records/{RECORD}",
            "self_html": f"https://zenodo.org/records/{RECORD}",
        },
        "files": [
            {
                "id": f"file-{i}",
                "key": key,
                "size": size,
                "checksum": f"md5:{md5}",
                "links": {
                    "self": (
                        f"{base}/api/records/{RECORD}/files/{key}/content"
                        if style == "content"
                        else f"{base}/api/files/5c1b-bucket/{key}"
                    )
                },
            }
            for i, (key, size, md5, style) in enumerate(files)
        ],
    }


class FakeZenodo:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.faults: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if outer.faults:
                    status = outer.faults.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "30")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != f"/api/records/{RECORD}":
                    body = json.dumps({"status": 404, "message": "PID does not exist."}).encode()
                    self.send_response(404)
                else:
                    body = json.dumps(_record(outer.url)).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def zenodo(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeZenodo]:
    server = FakeZenodo()
    monkeypatch.setenv("SECURITYNET_ZENODO_API_URL", f"{server.url}/api")
    monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "0")
    yield server
    server.close()


def test_the_manifest_lists_the_medmnist_record() -> None:
    records = load_manifest().records
    assert RECORD in [r.record for r in records]


def test_sync_catalogues_each_checkpoint_file_with_its_md5(
    catalogue: Catalogue, zenodo: FakeZenodo
) -> None:
    zenodo.faults = [502]  # one server error, retried
    cat = Catalogue(catalogue.url)
    (summary,) = cat.sync("zenodo")
    assert summary.status == "ok" and summary.added == 2
    assert zenodo.requests == [f"/api/records/{RECORD}"] * 2
    blood = cat.get(f"zenodo:{RECORD}/weights_bloodmnist.zip")
    (file,) = blood.files
    assert (file.checksum, file.checksum_algo, file.size, file.format) == (
        "0f" * 16,
        "md5",
        94_371_840,
        "zip",
    )
    assert file.url == f"{zenodo.url}/api/records/{RECORD}/files/weights_bloodmnist.zip/content"
    assert (blood.licence, blood.revision, blood.dataset) == ("CC-BY-4.0", str(RECORD), "MedMNIST")  # licences normalised on ingest
    assert blood.upstream_url == f"https://zenodo.org/records/{RECORD}"
    legacy = cat.get(f"zenodo:{RECORD}/weights_organmnist3d.zip").files[0]
    assert legacy.url.endswith("/api/files/5c1b-bucket/weights_organmnist3d.zip")
    assert cat.find(f"zenodo:{RECORD}/README.md") is None
    # a second sync changes nothing
    (again,) = cat.sync("zenodo")
    assert (again.added, again.unchanged) == (0, 2)


def test_a_missing_record_is_skipped_and_a_rate_limit_fails_the_source(
    catalogue: Catalogue, zenodo: FakeZenodo
) -> None:
    cat = Catalogue(catalogue.url)
    (summary,) = cat.sync("zenodo", options={"records": [{"record": 1}, {"record": RECORD}]})
    assert summary.status == "ok" and summary.added == 2
    zenodo.faults = [429]
    (limited,) = cat.sync("zenodo", full=True)
    assert limited.status == "failed" and "429" in (limited.error or "")
    # nothing is marked removed by a failed run
    assert cat.count(source="zenodo") == 2


def test_offline_the_source_is_skipped_with_one_line(
    catalogue: Catalogue, zenodo: FakeZenodo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    (summary,) = Catalogue(catalogue.url).sync("zenodo")
    assert summary.status == "skipped" and "offline" in (summary.error or "")
    assert zenodo.requests == []
