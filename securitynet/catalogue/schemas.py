"""The JSON Schemas committed under ``schema/``, generated from the models that define them.

    python -m securitynet.catalogue.schemas            # rewrite schema/*.schema.json
    python -m securitynet.catalogue.schemas --check    # exit 1 if a committed file is stale

A test runs the check, so a model change without its regenerated schema fails the suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _annotations() -> dict[str, Any]:
    from securitynet.annotate.overrides import curated_json_schema

    return curated_json_schema()


def _archspec() -> dict[str, Any]:
    from securitynet.annotate.archspec import archspec_json_schema

    return archspec_json_schema()


def _export_row() -> dict[str, Any]:
    from securitynet.catalogue.export import ExportRow

    return ExportRow.model_json_schema()


def _export_full() -> dict[str, Any]:
    from securitynet.records import CatalogueEntry

    return CatalogueEntry.model_json_schema(mode="serialization")


#: file name under schema/ -> (title, what makes it)
SCHEMAS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "annotations.schema.json": ("A curated annotation file (annotations/*.yaml)", _annotations),
    "archspec.schema.json": (
        "A declared architecture (architecture_spec in a curated annotation file)",
        _archspec,
    ),
    "export.schema.json": ("One row of a flat export (securitynet export FILE)", _export_row),
    "export-full.schema.json": (
        "One entry of a full export (securitynet export --full FILE)",
        _export_full,
    ),
}


def render_schemas() -> dict[str, str]:
    """File name -> the exact text it should hold."""
    out = {}
    for name, (title, make) in SCHEMAS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **make()}
        schema.setdefault("description", title)
        out[name] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return out


def stale_schemas(folder: Path) -> list[str]:
    """Names of the schema files in ``folder`` that are missing or differ from the models."""
    return [
        name
        for name, text in render_schemas().items()
        if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text
    ]


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written


def main(argv: list[str] | None = None) -> int:
    from securitynet.resources import resource_dir

    parser = argparse.ArgumentParser(
        prog="python -m securitynet.catalogue.schemas", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="only report stale files (exit 1 if any)"
    )
    parser.add_argument("--folder", type=Path, default=None, help="default: the schema/ folder")
    args = parser.parse_args(argv)
    folder = args.folder or resource_dir("schema")
    if args.check:
        stale = stale_schemas(folder)
        for name in stale:
            print(f"stale: {folder / name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
