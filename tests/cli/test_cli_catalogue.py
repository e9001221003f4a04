"""What a user sees from the catalogue commands: output, formats, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from securitynet.catalogue import ingest
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.engine import head_revision
from securitynet.errors import UpstreamError
from securitynet.records import EntryRecord
from securitynet.scrapers.base import SyncContext, Unchanged
from tests.catalogue import sample
from tests.cli.conftest import Invoke, Run

ROOT = Path(__file__).resolve().parents[2]
VIT = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k"


def _ids(run: Run) -> list[str]:
    assert run.code == 0, run.stderr
    return [row["id"] for row in json.loads(run.stdout)]


def _one_error(run: Run, *fragments: str) -> None:
    """Exit 1, nothing on stdout, one 'error:' line (and perhaps one 'hint:' line) on stderr."""
    assert run.code == 1, (run.stdout, run.stderr)
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2, run.stderr
    assert all(line.startswith("hint: ") for line in lines[1:])
    for fragment in fragments:
        assert fragment in run.stderr


# --- list ------------------------------------------------------------------------------------


def test_list_shows_live_entries_best_first(catalogue: Catalogue, cli: Invoke) -> None:
    ids = _ids(cli("list", "--format", "json"))
    assert len(ids) == len(sample.LIVE) and sample.REMOVED not in ids
    assert ids[:2] == ["imgclsmob:wrn16_10_cifar10", "imgclsmob:densenet40_k12_cifar10"]  # 97, 96
    assert set(ids[-2:]) == {
        "hf:someone/mystery-net",
        "timm:vit_huge_patch14_clip_224.laion2b",
    }  # no top-1: last
    assert sample.REMOVED in _ids(cli("list", "--include-removed", "--format", "json"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--dataset", "cifar10", "--sort", "+params"],
            [
                "imgclsmob:resnet20_cifar10",
                "imgclsmob:resnet56_cifar10",
                "imgclsmob:densenet40_k12_cifar10",
                "imgclsmob:wrn16_10_cifar10",
            ],
        ),
        (
            ["--dataset", "ImageNet-1k", "--sort", "top1", "--limit", "2"],
            [VIT, "timm:resnet50.a1_in1k"],
        ),
        (
            ["--min-params", "25M", "--max-params", "1.5B", "--sort", "-params"],
            [
                "timm:vit_huge_patch14_clip_224.laion2b",
                VIT,
                "timm:resnet50.a1_in1k",
                "torchvision:resnet50.IMAGENET1K_V1",
            ],
        ),
        (
            ["--min-top1", "95", "--sort", "id"],
            [
                "imgclsmob:densenet40_k12_cifar10",
                "imgclsmob:resnet56_cifar10",
                "imgclsmob:wrn16_10_cifar10",
            ],
        ),
        (["--source", "torchvision"], ["torchvision:resnet50.IMAGENET1K_V1"]),
        (
            ["--architecture", "resnet50", "--licence", "BSD-3-Clause"],
            ["torchvision:resnet50.IMAGENET1K_V1"],
        ),
        (["--family", "vit", "--sort", "name"], [VIT, "timm:vit_huge_patch14_clip_224.laion2b"]),
        (["--search", "mystery"], ["hf:someone/mystery-net"]),
        (["--source", "hf", "--min-top1", "1"], []),
    ],
)
def test_list_filters_and_sorts(
    catalogue: Catalogue, cli: Invoke, args: list[str], expected: list[str]
) -> None:
    assert _ids(cli("list", *args, "--format", "json")) == expected


def test_list_table_is_plain_text_when_piped(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("list", "--dataset", "ImageNet-1k")
    assert run.code == 0
    header, rule, *rows = run.stdout.splitlines()
    assert header.split() == ["id", "dataset", "top1", "params", "family", "licence"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert rows[0].split()[:4] == [VIT, "ImageNet-1k", "84.50", "86.6M"]
    assert "\x1b[" not in run.stdout  # no colour codes in a pipe


def test_list_says_when_the_limit_cut_it(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("list", "--limit", "2", "--format", "json")
    assert len(json.loads(run.stdout)) == 2
    assert f"2 of {len(sample.LIVE)} entries" in run.stderr
    assert cli("list", "--limit", "0", "--format", "json").stderr == ""


def test_list_csv(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("list", "--source", "imgclsmob", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert (
        len(rows) == 5
        and rows[0]["id"] == "imgclsmob:wrn16_10_cifar10"
        and rows[0]["params"] == "17116634"
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--dataset", "cifr10"], ["no entry has dataset 'cifr10'", "CIFAR-10"]),
        (["--family", "resnt"], ["no entry has family 'resnt'", "resnet"]),
        (["--min-params", "lots"], ["not a parameter count", "25M"]),
        (["--sort", "speed"], ["unknown sort key", "top1"]),
        (["--source", "nowhere"], ["unknown source", "timm"]),
    ],
)
def test_bad_filters_give_one_line_and_a_hint(
    catalogue: Catalogue, cli: Invoke, args: list[str], fragments: list[str]
) -> None:
    _one_error(cli("list", *args), *fragments)


# --- show ------------------------------------------------------------------------------------


def test_show_json_has_every_claim_dataset_file_and_fact_with_provenance(
    catalogue: Catalogue, cli: Invoke
) -> None:
    run = cli("show", "torchvision:resnet50.IMAGENET1K_V1", "--format", "json")
    assert run.code == 0 and run.stderr == ""
    entry = json.loads(run.stdout)
    assert entry["id"] == "torchvision:resnet50.IMAGENET1K_V1"
    assert {(c["metric"], c["value"], c["source"], c["evidence"]) for c in entry["claims"]} == {
        ("top1", 76.13, "torchvision", "results table"),
        ("top5", 92.862, "torchvision", "results table"),
    }
    assert entry["datasets"] == [
        {
            "dataset": "ImageNet-1k",
            "raw_name": None,
            "stage": "train",
            "source": "torchvision",
            "evidence": "tag",
        }
    ]
    assert entry["files"][0]["sha256"] == sample.sha_of(entry["files"][0]["url"])
    params = next(f for f in entry["facts"] if f["key"] == "params")
    assert (params["value"], params["source"], params["evidence"]) == (
        25_557_032,
        "torchvision",
        "registry",
    )


def test_show_text(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("show", VIT)
    assert run.code == 0
    assert "Training chain" in run.stdout and "ImageNet-21k" in run.stdout
    assert "86.6M (86,567,656)" in run.stdout


def test_show_unknown_id_is_one_line_with_a_suggestion(catalogue: Catalogue, cli: Invoke) -> None:
    _one_error(cli("show", "timm:resnet50"), "no entry 'timm:resnet50'", "timm:resnet50.a1_in1k")


def test_show_malformed_id(catalogue: Catalogue, cli: Invoke) -> None:
    _one_error(cli("show", "resnet50"), "not an entry id", "source:name")


# --- stats -----------------------------------------------------------------------------------


def test_stats_json_numbers(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("stats", "--by", "dataset", "--format", "json")
    rows = {r["dataset"]: r for r in json.loads(run.stdout)}
    assert rows["CIFAR-10"]["entries"] == 4 and rows["CIFAR-10"]["top1_median"] == pytest.approx(
        95.5
    )
    assert rows["LAION-2B"]["top1_median"] is None  # null, not NaN: valid JSON
    assert rows[None]["entries"] == 1


def test_stats_table_and_plot(catalogue: Catalogue, cli: Invoke, tmp_path: Path) -> None:
    run = cli("stats", "--by", "family", "--plot", str(tmp_path / "acc.png"))
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines()[0].split()[:3] == ["family", "entries", "with_top1"]
    assert "(unknown)" in run.stdout
    assert (tmp_path / "acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {tmp_path / 'acc.png'}" in run.stderr


def test_stats_plot_names_what_it_left_out(catalogue: Catalogue, cli: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "cifar.svg"
    run = cli("stats", "--by", "architecture", "--dataset", "CIFAR-10", "--plot", str(out), "--max-groups", "1")
    assert run.code == 0, run.stderr
    assert "groups left out:" in run.stderr
    svg = out.read_text(encoding="utf-8")
    assert "wrn16_10" in svg  # the best CIFAR-10 architecture (97 %) is the one kept
    assert "Top-1" not in svg  # no title unless --title


def test_stats_bad_group(catalogue: Catalogue, cli: Invoke) -> None:
    _one_error(cli("stats", "--by", "colour"), "cannot group by 'colour'")


# --- sql -------------------------------------------------------------------------------------


def test_sql_query_json(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli(
        "sql",
        "SELECT dataset, entries FROM v_entries_per_dataset WHERE dataset = 'CIFAR-10'",
        "-f",
        "json",
    )
    assert run.code == 0 and run.stderr == ""
    assert json.loads(run.stdout) == [{"dataset": "CIFAR-10", "entries": 4}]


def test_sql_reads_the_query_from_stdin(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("sql", "-", "--format", "csv", input="SELECT count(*) AS n FROM entry\n")
    assert run.stdout.splitlines() == ["n", str(len(sample.RECORDS))]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM entry",
        "DROP TABLE entry",
        "ATTACH DATABASE 'x.db' AS x",
        "PRAGMA writable_schema = ON",
        "WITH x AS (SELECT 1) DELETE FROM entry",
    ],
)
def test_sql_refuses_writes(catalogue: Catalogue, cli: Invoke, statement: str) -> None:
    _one_error(cli("sql", statement), "refused")
    assert catalogue.count(include_removed=True) == len(sample.RECORDS)


def test_sql_row_cap_and_timeout(catalogue: Catalogue, cli: Invoke) -> None:
    run = cli("sql", "SELECT id FROM entry", "--max-rows", "2", "--format", "json")
    assert run.code == 0 and len(json.loads(run.stdout)) == 2
    assert "stopped at 2 rows" in run.stderr
    forever = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    )
    _one_error(cli("sql", forever, "--timeout", "0.2"), "time limit", "--timeout")


def test_sql_error_is_one_line(catalogue: Catalogue, cli: Invoke) -> None:
    _one_error(cli("sql", "SELECT nonsense FROM entry"), "SQL error")


# --- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.csv", "out.json", "out.parquet", "out.jsonl"])
def test_export_writes_each_format(
    catalogue: Catalogue, cli: Invoke, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    run = cli("export", str(path))
    assert run.code == 0, run.stderr
    assert run.stdout == "" and f"wrote {len(sample.LIVE)} entries" in run.stderr
    if name.endswith(".csv"):
        ids = [r["id"] for r in csv.DictReader(path.open(encoding="utf-8"))]
    elif name.endswith(".json"):
        ids = [r["id"] for r in json.loads(path.read_text(encoding="utf-8"))]
    elif name.endswith(".jsonl"):
        ids = [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        ids = pq.read_table(path).column("id").to_pylist()
    assert ids == sorted(r.id for r in sample.LIVE)


def test_export_full_and_filters(catalogue: Catalogue, cli: Invoke, tmp_path: Path) -> None:
    run = cli("export", str(tmp_path / "vit.jsonl"), "--full", "--family", "vit")
    assert run.code == 0, run.stderr
    entries = [
        json.loads(line)
        for line in (tmp_path / "vit.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [e["id"] for e in entries] == [VIT, "timm:vit_huge_patch14_clip_224.laion2b"]
    assert entries[0]["claims"][0]["source"] == "timm"
    _one_error(cli("export", str(tmp_path / "x.csv"), "--full"), "cannot be written as csv")


# --- db, version -----------------------------------------------------------------------------


def test_db_current_and_upgrade(empty_catalogue: Catalogue, cli: Invoke) -> None:
    head = head_revision()
    before = cli("db", "current", "--format", "json")
    assert json.loads(before.stdout)["current"] is None and json.loads(before.stdout)["head"] == head
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0 and f"revision {head}" in upgraded.stdout
    after = cli("db", "current")
    assert f"current:  {head}" in after.stdout and f"head:     {head}" in after.stdout


def test_version(cli: Invoke) -> None:
    run = cli("--version")
    assert run.code == 0 and run.stdout.startswith("securitynet ")


# --- sync (small fake scrapers: the real ones live in their own modules) ---------------------


class _FakeScraper:
    needs_network = False

    def __init__(self, name: str, records: list[EntryRecord], *, fail: bool = False) -> None:
        self.name, self.records, self.fail = name, records, fail

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        return None

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        if self.fail:
            raise UpstreamError("the registry is unreachable")
        yield from self.records


@pytest.fixture
def fake_sources(monkeypatch: pytest.MonkeyPatch) -> dict[str, _FakeScraper]:
    scrapers = {
        "imgclsmob": _FakeScraper(
            "imgclsmob", [r for r in sample.RECORDS if r.source == "imgclsmob"]
        ),
        "torchvision": _FakeScraper(
            "torchvision", [r for r in sample.RECORDS if r.source == "torchvision"]
        ),
    }
    monkeypatch.setattr(ingest, "DEFAULT_SOURCES", tuple(scrapers))
    monkeypatch.setattr(ingest, "get_scraper", lambda name: scrapers[name])
    return scrapers


def test_sync_reports_each_source_and_what_the_catalogue_holds(
    empty_catalogue: Catalogue, cli: Invoke, fake_sources: dict[str, _FakeScraper]
) -> None:
    run = cli("sync", "--offline")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("imgclsmob: 5 seen, 5 added, 0 updated")
    assert lines[1].startswith("torchvision: 1 seen, 1 added")
    assert "The catalogue holds 6 entries." in run.stdout
    assert any(line.split()[:3] == ["imgclsmob", "5", "5"] for line in lines)
    again = cli("sync", "--offline", "--format", "json")
    report = json.loads(again.stdout)  # machine-clean: nothing but JSON on stdout
    assert [(s["source"], s["added"], s["unchanged"]) for s in report["sources"]] == [
        ("imgclsmob", 0, 5),
        ("torchvision", 0, 1),
    ]
    assert {r["source"]: r["entries"] for r in report["catalogue"]} == {
        "imgclsmob": 5,
        "torchvision": 1,
    }


def test_sync_exits_1_when_a_source_fails_and_keeps_the_others(
    empty_catalogue: Catalogue, cli: Invoke, fake_sources: dict[str, _FakeScraper]
) -> None:
    fake_sources["torchvision"].fail = True
    run = cli("sync")
    assert run.code == 1
    assert "torchvision: failed: UpstreamError: the registry is unreachable" in run.stdout
    assert "error: sync failed for torchvision" in run.stderr
    assert empty_catalogue.count() == 5


def test_sync_of_one_named_source(
    empty_catalogue: Catalogue, cli: Invoke, fake_sources: dict[str, _FakeScraper]
) -> None:
    run = cli("sync", "--source", "torchvision", "--limit", "1")
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines()[0].startswith("torchvision: 1 seen, 1 added")
    assert empty_catalogue.count() == 1


# --- the real entry point --------------------------------------------------------------------


def test_the_installed_entry_point_runs(catalogue: Catalogue, catalogue_url: str) -> None:
    env = {**os.environ, "SECURITYNET_DATABASE_URL": catalogue_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "securitynet",
            "sql",
            "SELECT count(*) AS n FROM entry",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": len(sample.RECORDS)}]
    missing = subprocess.run(
        [sys.executable, "-m", "securitynet", "show", "timm:nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("error: no entry 'timm:nope'")
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("args", [["nosuch"], ["list", "--limit", "many"], ["stats", "--plot"]])
def test_usage_errors_are_short_not_tracebacks(cli: Invoke, args: list[str]) -> None:
    run = cli(*args)
    assert run.code == 2
    assert "Error:" in run.stderr and "Traceback" not in run.stderr
