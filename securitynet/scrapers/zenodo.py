"""Zenodo: the checkpoint files of the records listed in ``scrapers/zenodo.yaml``.

One ``GET <api>/records/<id>`` per record (base URL ``SECURITYNET_ZENODO_API_URL``). The
answer's ``files`` list gives each file's ``key``, ``size``, ``checksum`` (``md5:<hex>``)
and download link (``links.self``: ``.../files/<key>/content`` on today's Zenodo,
``.../api/files/<bucket>/<key>`` on the legacy API; ``links.download`` where given). Every
selected file becomes an entry ``zenodo:<record>/<file key>`` with that file (md5 pinned),
the record's licence, title and page, and whatever the manifest says the curator knows
(data set, purpose, note). Record versions are immutable, so the record id is the revision.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from securitynet.annotate.datasets import dataset_name
from securitynet.errors import ConfigurationError, MalformedUpstreamError, NotFoundError
from securitynet.records import DatasetLink, EntryRecord, FileRef, Purpose, Stage
from securitynet.resources import resource_dir
from securitynet.scrapers._common import limit_reached
from securitynet.scrapers._fetch import fetch_text
from securitynet.scrapers.base import SyncContext, Unchanged

log = logging.getLogger(__name__)

SOURCE = "zenodo"
DEFAULT_INCLUDE = (
    "*.pt",
    "*.pth",
    "*.pth.tar",
    "*.ckpt",
    "*.bin",
    "*.safetensors",
    "*.h5",
    "*.zip",
    "*.tar",
    "*.tar.gz",
)
_FORMATS = {
    ".safetensors": "safetensors",
    ".zip": "zip",
    ".tar": "tar",
    ".gz": "tar.gz",
    ".h5": "h5",
}
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9._\-/+@=~]")
_MD5 = re.compile(r"^md5:([0-9a-f]{32})$")


class ZenodoRecordSpec(BaseModel):
    """One record of the manifest."""

    model_config = ConfigDict(extra="forbid")
    record: int = Field(gt=0)
    include: list[str] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    dataset: str | None = None
    purpose: Purpose | None = None
    note: str | None = None


class ZenodoManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[ZenodoRecordSpec] = Field(default_factory=list)


def load_manifest(options: Mapping[str, Any] | None = None) -> ZenodoManifest:
    """``scrapers/zenodo.yaml`` (or ``options['records']`` instead of its records)."""
    path = resource_dir("scrapers") / "zenodo.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if options and "records" in options:
            data["records"] = options["records"]
        return ZenodoManifest.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"bad zenodo source manifest or options ({path}): {exc}") from exc


class _File(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: str
    size: int | None = Field(default=None, ge=0)
    checksum: str | None = None
    links: dict[str, Any] = Field(default_factory=dict)


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    doi: str | None = None
    updated: datetime | None = None
    modified: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: list[_File] = Field(default_factory=list)
    links: dict[str, Any] = Field(default_factory=dict)


def _licence(metadata: dict[str, Any]) -> str | None:
    licence = metadata.get("license")
    if isinstance(licence, dict):
        return licence.get("id") or licence.get("title")
    if isinstance(licence, str):
        return licence
    rights = metadata.get("rights")
    if isinstance(rights, list) and rights and isinstance(rights[0], dict):
        return rights[0].get("id")
    return None


def _format(key: str) -> str | None:
    lowered = key.lower()
    for suffix, fmt in _FORMATS.items():
        if lowered.endswith(suffix):
            return fmt
    if lowered.endswith((".pt", ".pth", ".pth.tar", ".ckpt", ".bin")):
        return "pytorch"
    return None


def build_records(spec: ZenodoRecordSpec, body: str, *, api_url: str) -> Iterator[EntryRecord]:
    """The entries of one record's JSON (``GET /api/records/<id>``)."""
    try:
        record = _Record.model_validate(json.loads(body))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise MalformedUpstreamError(
            f"zenodo record {spec.record}: {exc}", record=spec.record
        ) from exc
    page = (
        record.links.get("self_html")
        or record.links.get("html")
        or f"https://zenodo.org/records/{record.id}"
    )
    title = record.metadata.get("title")
    chain = (
        [
            DatasetLink(
                dataset=dataset_name(spec.dataset),
                raw_name=spec.dataset,
                stage=Stage.TRAIN,
                source="curated:scrapers/zenodo.yaml",
                evidence=f"record {spec.record}",
            )
        ]
        if spec.dataset
        else []
    )
    for file in record.files:
        if not any(fnmatch.fnmatch(file.key.lower(), pattern.lower()) for pattern in spec.include):
            continue
        url = file.links.get("download") or file.links.get("self") or file.links.get("content")
        if not url:
            url = f"{api_url.rstrip('/')}/records/{record.id}/files/{file.key}/content"
        md5 = _MD5.match(file.checksum or "")
        if file.checksum and md5 is None:
            log.warning(
                "zenodo %s: %s has checksum %r, not md5", record.id, file.key, file.checksum
            )
        name = f"{record.id}/{_BAD_NAME_CHARS.sub('_', file.key)}"
        yield EntryRecord(
            id=f"{SOURCE}:{name}",
            licence=_licence(record.metadata),
            purpose=spec.purpose,
            upstream_url=page,
            revision=str(record.id),
            upstream_modified=record.updated or record.modified,
            datasets=chain,
            files=[
                FileRef(
                    url=url,
                    filename=file.key,
                    revision=str(record.id),
                    size=file.size,
                    checksum=md5.group(1) if md5 else None,
                    checksum_algo="md5" if md5 else None,
                    format=_format(file.key),
                )
            ],
            evidence={"licence": f"zenodo record {record.id} metadata.license"},
            extra_facts={"title": title, "doi": record.doi, "note": spec.note},
            raw={"record": record.id, "file": file.model_dump(mode="json"), "title": title},
        )


class ZenodoScraper:
    name = SOURCE
    needs_network = True

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        if ctx.settings.offline:
            return "offline (SECURITYNET_OFFLINE); Zenodo's API is not asked"
        return None

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        manifest = load_manifest(ctx.options)
        api = ctx.settings.zenodo_api_url.rstrip("/")
        count = 0
        for spec in manifest.records:
            try:
                body = fetch_text(f"{api}/records/{spec.record}", ctx.settings, what="zenodo")
            except NotFoundError:
                log.warning("zenodo: record %s not found; skipped", spec.record)
                continue
            for record in build_records(spec, body, api_url=api):
                if limit_reached(count, ctx.limit):
                    return
                yield record
                count += 1
