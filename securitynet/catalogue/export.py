"""Export the catalogue to a file.

Two shapes:

- **flat** (default): one row per entry, the columns of :class:`ExportRow` (the entry's own
  fields, its training chain as one string, its claim count and its main weight file), as
  ``csv``, ``json`` (an array of objects), ``jsonl`` (one object per line) or ``parquet``.
  ``schema/export.schema.json`` is the JSON Schema of one row.
- **full** (``full=True``): every entry whole, with every accuracy claim, data set, file,
  fact and evaluation and their provenance, as ``jsonl`` or ``json``: what
  ``securitynet show ID --format json`` prints, for each entry.
  ``schema/export-full.schema.json`` is the JSON Schema of one entry.

The format follows the file's extension unless given. The file is written beside its final
name and renamed into place, so a failed export never leaves half a file.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, func, select

from securitynet.catalogue import queries
from securitynet.catalogue.api import make_filter
from securitynet.catalogue.curation import ORIGIN as CURATED
from securitynet.catalogue.models import AccuracyClaimRow, Entry, EntryDataset, WeightFile
from securitynet.errors import InvalidQueryError, SecurityNetError
from securitynet.records import Stage

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue

FLAT_FORMATS = ("csv", "json", "jsonl", "parquet")
FULL_FORMATS = ("jsonl", "json")
_BY_SUFFIX = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
CHAIN_SEPARATOR = " > "


class ExportRow(BaseModel):
    """One entry in a flat export."""

    model_config = ConfigDict(extra="forbid", title="securitynet export row")

    id: str = Field(description="Entry id, 'source:name'.")
    source: str = Field(
        description="Where the entry comes from: timm, torchvision, imgclsmob, hf, ..."
    )
    name: str = Field(description="The entry's name within its source.")
    task: str
    architecture: str | None = Field(description="Constructor or model-type name.")
    family: str | None = Field(description="Architecture family (resnet, vit, ...).")
    num_classes: int | None
    input_size: int | None = Field(description="Input side in pixels.")
    params: int | None = Field(description="Parameter count.")
    gflops: float | None
    licence: str | None
    paper: str | None = Field(description="arXiv id or URL of the paper.")
    library: str | None
    upstream_url: str | None
    revision: str | None = Field(
        description="Upstream revision or checksum the entry is pinned to."
    )
    dataset: str | None = Field(description="Final training data set.")
    top1: float | None = Field(
        description="Best top-1 claim on that data set at the input size the loader uses, percent."
    )
    top1_best: float | None = Field(description="Best top-1 claim on that data set at any size.")
    top1_best_size: int | None = Field(description="The image size of that best figure.")
    same_weights_as: str | None = Field(
        description="The entry whose weight file this one also loads (one checkpoint, two names)."
    )
    training_chain: str | None = Field(
        description=f"Training data sets in order, joined by {CHAIN_SEPARATOR!r}; a curated chain wins over a scraped one."
    )
    claims: int = Field(
        description="Number of accuracy claims (every source, data set and metric)."
    )
    weights_url: str | None = Field(description="URL of the entry's first weight file.")
    weights_sha256: str | None = Field(description="Its full SHA-256, when known.")
    first_seen: datetime
    last_seen: datetime
    removed_upstream: bool


EXPORT_COLUMNS: tuple[str, ...] = tuple(ExportRow.model_fields)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    format: str
    rows: int
    full: bool


def export_format(path: str | Path, format: str | None = None, *, full: bool = False) -> str:
    """The format to write ``path`` in: ``format`` when given, else from the extension."""
    allowed = FULL_FORMATS if full else FLAT_FORMATS
    chosen = (format or _BY_SUFFIX.get(Path(path).suffix.lower(), "")).lower()
    if not chosen:
        raise InvalidQueryError(
            f"cannot tell the format of {Path(path).name!r} from its extension",
            hint=f"Name it .csv, .json, .jsonl or .parquet, or pass --format ({', '.join(allowed)}).",
        )
    if chosen not in allowed:
        what = "a full export" if full else "an export"
        raise InvalidQueryError(
            f"{what} cannot be written as {chosen}",
            hint=f"Use one of: {', '.join(allowed)}.",
            value=chosen,
        )
    return chosen


def _matching_ids(filters: dict[str, Any]) -> Any:
    listing = queries.search_statement(make_filter(**filters), sort=None).subquery()
    return select(listing.c.id)


def _chains(rows: Iterable[Any]) -> dict[str, str]:
    steps: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        steps[row.entry_id].append(row)
    out = {}
    for entry_id, chain in steps.items():
        chain = [r for r in chain if r.origin == CURATED] or chain
        out[entry_id] = CHAIN_SEPARATOR.join(
            f"{r.dataset} (distill)" if r.stage == Stage.DISTILL else r.dataset for r in chain
        )
    return out


#: Entries per batch of a flat export: memory stays bounded by one batch, whatever the size
#: of the catalogue (and under SQLite's limit on bound parameters).
BATCH_SIZE = 5000


def iter_export_batches(
    catalogue: Catalogue, *, batch_size: int = BATCH_SIZE, **filters: Any
) -> Iterator[list[dict[str, Any]]]:
    """The flat rows (dicts keyed by :data:`EXPORT_COLUMNS`) of the entries matching
    ``filters``, in id order, ``batch_size`` entries at a time (keyset pagination: each batch
    is one indexed range read, whatever its offset)."""
    where = queries.conditions(make_filter(**filters))
    entry_columns = [c for c in EXPORT_COLUMNS if c in Entry.__table__.columns]
    last: str | None = None
    with catalogue.engine.connect() as s:  # Core rows: no ORM loading per row
        while True:
            stmt = select(*(getattr(Entry, c) for c in entry_columns)).where(*where)
            if last is not None:
                stmt = stmt.where(Entry.id > last)
            entries = s.execute(stmt.order_by(Entry.id).limit(batch_size)).all()
            if not entries:
                return
            ids = [e.id for e in entries]
            last = ids[-1]
            yield _flat_rows(s, entries, ids)
            if len(entries) < batch_size:
                return


def _flat_rows(s: Any, entries: Sequence[Any], ids: list[str]) -> list[dict[str, Any]]:
    # the batch's children by id range (one indexed range scan, no 5,000 bound parameters);
    # rows of entries between those ids that the filters left out are looked up by no one
    in_batch = {"low": ids[0], "high": ids[-1]}

    def between(column: Any) -> Any:
        return column.between(bindparam("low"), bindparam("high"))

    chains = _chains(
        s.execute(
            select(
                EntryDataset.entry_id,
                EntryDataset.dataset,
                EntryDataset.stage,
                EntryDataset.origin,
            )
            .where(between(EntryDataset.entry_id))
            .order_by(EntryDataset.entry_id, EntryDataset.position, EntryDataset.id),
            in_batch,
        )
    )
    claims = dict(
        s.execute(
            select(AccuracyClaimRow.entry_id, func.count())
            .where(between(AccuracyClaimRow.entry_id))
            .group_by(AccuracyClaimRow.entry_id),
            in_batch,
        ).all()
    )
    weights: dict[str, tuple[str | None, str | None]] = {}
    for entry_id, file_url, file_sha256 in s.execute(
        select(WeightFile.entry_id, WeightFile.url, WeightFile.sha256)
        .where(between(WeightFile.entry_id), WeightFile.role == "weights")
        .order_by(WeightFile.entry_id, WeightFile.id),
        in_batch,
    ):
        weights.setdefault(entry_id, (file_url, file_sha256))
    rows = []
    names = list(entries[0]._fields) if entries else []
    for entry in entries:
        row = dict(zip(names, entry, strict=True))
        eid = row["id"]
        row["training_chain"] = chains.get(eid)
        row["claims"] = claims.get(eid, 0)
        row["weights_url"], row["weights_sha256"] = weights.get(eid, (None, None))
        row["removed_upstream"] = bool(row["removed_upstream"])  # UTCDateTime gives aware times
        rows.append({c: row[c] for c in EXPORT_COLUMNS})
    return rows


def export_rows(catalogue: Catalogue, **filters: Any) -> list[dict[str, Any]]:
    """The flat rows (dicts keyed by :data:`EXPORT_COLUMNS`) of the entries matching ``filters``."""
    return [row for batch in iter_export_batches(catalogue, **filters) for row in batch]


def iter_full_entries(catalogue: Catalogue, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every entry matching ``filters`` whole, as JSON-ready dicts, in id order."""
    ids_stmt = _matching_ids(filters)
    with catalogue.session() as s:
        ids = sorted(s.scalars(ids_stmt))
        for entry in queries.iter_entries(s, ids):
            yield entry.model_dump(mode="json")


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@contextmanager
def _atomic(path: Path, mode: str) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and move it into place only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    text = "b" not in mode
    try:
        with tmp.open(mode, encoding="utf-8" if text else None, newline="" if text else None) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_csv(batches: Iterable[list[dict[str, Any]]], fh: IO[str]) -> int:
    writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for rows in batches:
        writer.writerows({k: _json_value(v) for k, v in row.items()} for row in rows)
        n += len(rows)
    return n


def _write_json_lines(items: Iterable[dict[str, Any]], fh: IO[str], *, array: bool) -> int:
    """JSON lines, or (``array``) a JSON array with one item per line. Returns the count."""
    n = 0
    for item in items:
        line = json.dumps({k: _json_value(v) for k, v in item.items()}, ensure_ascii=False)
        if array:
            line = ("[\n" if n == 0 else ",\n") + line
        else:
            line += "\n"
        fh.write(line)
        n += 1
    if array:
        fh.write("\n]\n" if n else "[]\n")
    return n


def _arrow_schema() -> Any:
    """The Arrow schema of a flat row, with the pandas metadata that reads nullable integer
    columns back as ``Int64`` (not float64) and times as UTC timestamps."""
    import pandas as pd
    import pyarrow as pa

    types = {
        str: pa.string(),
        int: pa.int64(),
        float: pa.float64(),
        bool: pa.bool_(),
        datetime: pa.timestamp("us", tz="UTC"),
    }
    dtypes = {str: "object", int: "Int64", float: "float64", bool: "bool", datetime: "datetime64[us, UTC]"}
    fields = []
    frame = {}
    for name, info in ExportRow.model_fields.items():
        base = next(
            t for t in types if t in (info.annotation, *getattr(info.annotation, "__args__", ()))
        )
        fields.append(pa.field(name, types[base], nullable=info.annotation is not base))
        frame[name] = pd.Series([], dtype=dtypes[base])
    schema = pa.schema(fields)
    pandas_meta = pa.Schema.from_pandas(pd.DataFrame(frame), preserve_index=False).metadata
    return schema.with_metadata(pandas_meta)


def _write_parquet(batches: Iterable[list[dict[str, Any]]], fh: IO[bytes]) -> int:
    """Write each batch as it comes (one row group per batch); returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema()
    n = 0
    with pq.ParquetWriter(fh, schema) as writer:
        for rows in batches:
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
            n += len(rows)
    return n


def export_catalogue(
    catalogue: Catalogue,
    path: str | Path,
    *,
    format: str | None = None,
    full: bool = False,
    **filters: Any,
) -> ExportResult:
    """Write the entries matching ``filters`` to ``path`` (see the module's docstring)."""
    out = Path(path)
    chosen = export_format(out, format, full=full)
    try:
        if full:
            with _atomic(out, "w") as fh:
                n = _write_json_lines(
                    iter_full_entries(catalogue, **filters), fh, array=chosen == "json"
                )
            return ExportResult(out, chosen, n, full)
        batches = iter_export_batches(catalogue, **filters)
        if chosen == "parquet":
            with _atomic(out, "wb") as fh:
                n = _write_parquet(batches, fh)
        else:
            with _atomic(out, "w") as fh:
                if chosen == "csv":
                    n = _write_csv(batches, fh)
                else:
                    rows = (row for batch in batches for row in batch)
                    n = _write_json_lines(rows, fh, array=chosen == "json")
    except OSError as exc:
        raise SecurityNetError(f"cannot write {out}: {exc.strerror or exc}", path=str(out)) from exc
    return ExportResult(out, chosen, n, full)
