"""`show` says at which size its top-1 was measured; `list` and `stats` count each weight
file once and leave test nets out unless asked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.identity import link_shared_weights
from securitynet.catalogue.ingest import seed_datasets, write_records
from tests.catalogue.test_facts import RECORDS
from tests.cli.conftest import Invoke


def _fill(cat: Catalogue) -> None:
    with Session(cat.engine) as session, session.begin():
        seed_datasets(session)
        write_records(session, RECORDS, origin="timm")
    link_shared_weights(cat.engine)


def test_show_gives_the_loaders_figure_and_the_best(empty_catalogue: Catalogue, cli: Invoke) -> None:
    _fill(empty_catalogue)
    run = cli("show", "timm:resnet50.a1_in1k")
    assert run.code == 0
    assert re.search(r"^top-1 +80\.38 at 224 px \(best 81\.24 at 288 px\)$", run.stdout, re.M)
    claims = run.stdout.split("Accuracy claims", 1)[1]
    assert "224" in claims and "288" in claims  # every resolution is listed
    shared = cli("show", "timm:vit_large_patch14_clip_quickgelu_224.openai").stdout
    assert re.search(r"^same weights as +timm:vit_large_patch14_clip_224\.openai$", shared, re.M)


def test_list_and_stats_count_each_file_once(empty_catalogue: Catalogue, cli: Invoke) -> None:
    _fill(empty_catalogue)
    listed = [r["id"] for r in json.loads(cli("list", "--format", "json").stdout)]
    assert len(listed) == 3 and "timm:test_vit.r160_in1k" not in listed
    every = json.loads(cli("list", "--shared-weights", "--test-nets", "--format", "json").stdout)
    assert len(every) == len(RECORDS)
    stats = json.loads(cli("stats", "--format", "json").stdout)
    assert [(r["dataset"], r["entries"]) for r in stats] == [("ImageNet-1k", 3)]
    stats = json.loads(cli("stats", "--test-nets", "--shared-weights", "--format", "json").stdout)
    assert [(r["dataset"], r["entries"]) for r in stats] == [("ImageNet-1k", len(RECORDS))]


def test_the_readme_commands_run(catalogue: Catalogue, cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two commands of the README's "Reading the figures" section, as written there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Reading the figures", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split() for line in section.strip().splitlines()]
    assert [c[:2] for c in commands] == [["securitynet", "list"], ["securitynet", "stats"]]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        run = cli(*command[1:])
        assert run.code == 0, (command, run.stderr)
    assert (tmp_path / "families.pdf").read_bytes()[:5] == b"%PDF-"
