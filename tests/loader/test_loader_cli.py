"""``securitynet cache list | verify | prune`` and the ``load`` summary, through the CLI's
own entry point (its error boundary included)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from securitynet.cli import main
from securitynet.cli.commands_loader import load_cmd
from securitynet.loader import load_entry
from securitynet.loader.cache import Cache
from securitynet.records import EntryRecord, FileRef, LoadSpec
from securitynet.settings import get_settings


@pytest.fixture
def record(http_server) -> EntryRecord:
    import timm
    from safetensors.torch import save

    net = timm.create_model("test_vit", pretrained=False, num_classes=5)
    body = save({k: v.contiguous() for k, v in net.state_dict().items()})
    url = http_server.add("/test_vit.safetensors", body)
    return EntryRecord(
        id="timm:test_vit.tiny",
        files=[FileRef(url=url, sha256=hashlib.sha256(body).hexdigest())],
        load=LoadSpec(builder="timm", architecture="test_vit", num_classes=5, labels=list("abcde")),
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_load_summary(record: EntryRecord, capsys: pytest.CaptureFixture[str]) -> None:
    load_cmd(record, fmt="json")
    info = json.loads(capsys.readouterr().out)
    assert info["id"] == "timm:test_vit.tiny" and info["classes"] == 5 and info["labels"] == list("abcde")
    assert info["files"][0]["sha256"] == record.files[0].sha256 and info["device"] == "cpu"
    load_cmd(record, offline=True)
    out = capsys.readouterr().out
    assert "VisionTransformer" in out and "eval mode" in out and record.files[0].sha256[:16] in out  # type: ignore[index]


def test_cache_commands(record: EntryRecord, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cache", "list")
    assert code == 0 and "cache is empty" in out
    load_entry(record)
    code, out, _ = run(capsys, "cache", "list", "--format", "json")
    (entry,) = json.loads(out)
    assert entry["sha256"] == record.files[0].sha256 and entry["url"] == record.files[0].url

    code, out, _ = run(capsys, "cache", "verify")
    assert code == 0 and "1 files" in out and "0 altered" in out

    blob = Cache(get_settings().resolved_cache_dir).blob_path(entry["sha256"])
    os.chmod(blob, 0o644)
    blob.write_bytes(b"tampered")
    code, out, _ = run(capsys, "cache", "verify")
    assert code == 1 and f"altered: {entry['sha256']}" in out
    assert not blob.exists()

    load_entry(record)
    code, out, _ = run(capsys, "cache", "prune", "--all", "--dry-run")
    assert code == 0 and "would remove 1 entries, 1 files" in out
    code, out, _ = run(capsys, "cache", "prune", "--all")
    assert "removed 1 entries, 1 files" in out
    assert Cache(get_settings().resolved_cache_dir).list_records() == []


def test_errors_are_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cache", "list", "--format", "yaml")
    assert code == 1 and err.startswith("error: unknown format 'yaml'") and "hint:" in err


def test_load_command_resolves_the_id_in_the_catalogue(record: EntryRecord, capsys: pytest.CaptureFixture[str]) -> None:
    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.ingest import write_records

    with Catalogue() as cat, cat.session() as session:
        write_records(session, [record], origin="test")
        session.commit()
    code, out, _ = run(capsys, "load", record.id, "--format", "json")
    assert code == 0 and json.loads(out)["files"][0]["sha256"] == record.files[0].sha256
    code, out, _ = run(capsys, "load", record.id, "--offline")
    assert code == 0 and "eval mode" in out
    code, _, err = run(capsys, "load", "timm:not-in-the-catalogue")
    assert code == 1 and err.startswith("error:")


def test_load_command_offline_with_an_empty_cache(record: EntryRecord, capsys: pytest.CaptureFixture[str]) -> None:
    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.ingest import write_records

    with Catalogue() as cat, cat.session() as session:
        write_records(session, [record], origin="test")
        session.commit()
    code, _, err = run(capsys, "load", record.id, "--offline")
    assert code == 1 and "not in the cache" in err and "hint: Run once without --offline" in err


def test_load_without_a_network_is_one_line_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.ingest import write_records

    record = EntryRecord(
        id="torchvision:resnet18.OFFLINE",
        files=[FileRef(url="https://download.unresolvable.invalid/resnet18-f37072fd.pth")],
        load=LoadSpec(builder="torchvision", architecture="resnet18", num_classes=1000),
    )
    with Catalogue() as cat, cat.session() as session:
        write_records(session, [record], origin="test")
        session.commit()
    started = time.perf_counter()
    code, out, err = run(capsys, "load", record.id)
    assert time.perf_counter() - started < 10  # no retry storm, no build before the answer
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 2, err
    assert lines[0].startswith("error: no network") and lines[1].startswith("hint: ")


def test_the_first_verified_download_pins_the_file_whole(http_server, capsys: pytest.CaptureFixture[str]) -> None:
    import timm
    from safetensors.torch import save

    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.ingest import write_records

    net = timm.create_model("test_vit", pretrained=False, num_classes=5)
    body = save({k: v.contiguous() for k, v in net.state_dict().items()})
    sha = hashlib.sha256(body).hexdigest()
    url = http_server.add(f"/test_vit-{sha[:8]}.safetensors", body)
    record = EntryRecord(
        id="timm:test_vit.prefix_only",
        files=[FileRef(url=url, checksum=sha[:8], checksum_algo="sha256-prefix")],
        load=LoadSpec(builder="timm", architecture="test_vit", num_classes=5, labels=list("abcde")),
    )
    with Catalogue() as cat, cat.session() as session:
        write_records(session, [record], origin="test")
        session.commit()
    code, _, err = run(capsys, "load", record.id)
    assert code == 0, err
    with Catalogue() as cat:
        (f,) = cat.get(record.id).files
    assert (f.sha256, f.size, f.checksum) == (sha, len(body), sha[:8])  # the source's pin stays
    code, _, err = run(capsys, "load", record.id, "--offline")  # the whole pin holds the cache
    assert code == 0, err
