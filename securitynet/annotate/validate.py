"""Checking curated annotation files (``annotations/*.yaml``) before they are applied.

Each file is checked against the committed JSON Schema (``schema/annotations.schema.json``,
generated from :class:`~securitynet.annotate.overrides.CuratedFile`), then against the model
itself (ids that parse, one selector per item, only settable fields), and every value an
item sets is checked as the entry field it sets (``year: "2019a"`` is not a year). Problems
are returned, one per finding, with the file and the place in it; nothing is applied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from securitynet.annotate.overrides import CuratedFile
from securitynet.records import EntryRecord

_CHECK_ID = "local:annotation-check"


@dataclass(frozen=True, slots=True)
class AnnotationProblem:
    file: str
    where: str
    message: str

    def line(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"


def _where(path: Sequence[Any]) -> str:
    return "/".join(str(p) for p in path) or "(top)"


def _schema_problems(name: str, data: Any, schema: dict[str, Any]) -> list[AnnotationProblem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return [
        AnnotationProblem(name, _where(error.absolute_path), f"schema: {error.message}")
        for error in sorted(
            validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))
        )
    ]


def _value_problems(name: str, data: dict[str, Any]) -> list[AnnotationProblem]:
    problems = []
    for index, item in enumerate(data.get("items") or []):
        if not isinstance(item, dict) or not isinstance(item.get("set"), dict):
            continue
        for key, value in item["set"].items():
            if key not in EntryRecord.model_fields:
                continue
            try:
                EntryRecord.model_validate({"id": _CHECK_ID, key: value})
            except ValidationError as exc:
                first = exc.errors()[0]
                problems.append(
                    AnnotationProblem(
                        name, f"items/{index}/set/{key}", f"{value!r}: {first['msg']}"
                    )
                )
    return problems


def validate_annotation_file(path: Path, schema: dict[str, Any]) -> list[AnnotationProblem]:
    """Every problem of one file (an empty list: it is valid)."""
    name = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [AnnotationProblem(name, "(file)", f"cannot read: {exc}")]
    except yaml.YAMLError as exc:
        return [AnnotationProblem(name, "(file)", f"not YAML: {exc}")]
    problems = _schema_problems(name, data, schema)
    try:
        CuratedFile.model_validate(data)
    except ValidationError as exc:
        seen = {p.where for p in problems}
        for error in exc.errors():
            where = _where(error["loc"])
            if where not in seen:
                problems.append(AnnotationProblem(name, where, error["msg"]))
    if isinstance(data, dict):
        problems += _value_problems(name, data)
    return problems


def validate_annotations(
    paths: Sequence[Path] | None = None, *, schema_path: Path | None = None
) -> tuple[int, list[AnnotationProblem]]:
    """Check ``paths`` (default: every shipped ``annotations/*.yaml``); (files, problems)."""
    from securitynet.resources import resource_dir

    if not paths:
        paths = sorted(resource_dir("annotations").glob("*.yaml"))
    schema_file = schema_path or resource_dir("schema") / "annotations.schema.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    problems: list[AnnotationProblem] = []
    for path in paths:
        problems += validate_annotation_file(path, schema)
    return len(paths), problems
