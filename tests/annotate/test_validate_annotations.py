"""``securitynet annotations validate``: curated files against schema/ and the fields they set."""

from __future__ import annotations

from pathlib import Path

import pytest

from securitynet.annotate.validate import validate_annotations
from securitynet.cli.app import main

GOOD = """annotator: a curator
items:
  - id: "imgclsmob:resnet20_cifar10"
    set: {purpose: benchmark, venue: arXiv, year: 2018}
    evidence: the release's table
"""
BAD = """annotator: a curator
items:
  - id: "imgclsmob:resnet20_cifar10"
    set: {year: "nineteen", purpose: attack, colour: red}
    evidence: e
  - id: "no colon here"
    evidence: e
  - match: {source: timm}
    id: "timm:x"
    evidence: e
"""


def _run(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_the_shipped_files_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    count, problems = validate_annotations()
    assert count >= 2 and problems == []
    assert _run("annotations", "validate") == 0
    assert "valid" in capsys.readouterr().out


def test_problems_are_found_and_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, broken = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "broken.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad.write_text(BAD, encoding="utf-8")
    broken.write_text("annotator: [unclosed\n", encoding="utf-8")
    count, problems = validate_annotations([good, bad, broken])
    assert count == 3
    by_place = {(p.file, p.where) for p in problems}
    assert ("good.yaml", "items/0/set/year") not in by_place
    assert ("bad.yaml", "items/0/set/year") in by_place  # "nineteen" is not a year
    assert ("bad.yaml", "items/0/set/purpose") in by_place  # not benchmark|security|other
    assert any(p.file == "bad.yaml" and "colour" in p.message for p in problems)
    assert any(p.file == "bad.yaml" and p.where.startswith("items/1") for p in problems)
    assert any(p.file == "bad.yaml" and p.where.startswith("items/2") for p in problems)
    assert [p.where for p in problems if p.file == "broken.yaml"] == ["(file)"]
    assert _run("annotations", "validate", str(good), str(bad)) == 1
    out = capsys.readouterr()
    assert "bad.yaml: items/0/set/year" in out.out and "problem(s) in 2 file(s)" in out.err
