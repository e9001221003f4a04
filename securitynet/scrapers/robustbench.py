"""RobustBench's per-model annotations (``model_info/<dataset>/<threat model>/<name>.json``).

One file per leaderboard model: paper link and title, authors, venue, architecture (as
text), whether extra training data was used, the threat model's epsilon and the
accuracies, all of them strings (``"8/255"``, ``"68.38"``, ``""`` when not given). What
becomes of a file:

- an entry ``robustbench:<dataset>/<threat model>/<name>`` (purpose ``security``: a
  defence), trained on the data set, with venue, year, paper and facts for the threat
  model, epsilon (a number: ``8/255`` -> 0.0314), the architecture text, the extra-data
  flag, the number of forward passes, the "unreliable" flag and the footnote;
- the clean accuracy is a claim (split ``test``, percent, source ``robustbench``);
- AutoAttack robust accuracy, the paper's reported robust accuracy and the corruption
  accuracies are evaluation figures (attack ``robust-accuracy``, variant ``autoattack``,
  ``reported``, ``corruptions``, ``corruptions-3d``; metric ``accuracy`` in percent; a
  stated 0.0 is a figure: an undefended net's robust accuracy is 0);
- weights are "not resolved" (fact ``weights_status``): RobustBench hosts them on Google
  Drive and elsewhere, through code, until a source for them is known.

``PATH`` is a ``model_info`` folder (or one file in it). A URL is either a ``.tar.gz``
archive of the repository (the default: GitHub's archive of RobustBench's default branch),
whose ``model_info/`` members are read in memory (nothing is extracted), or one file (the
path's last three parts give data set, threat model and name).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from securitynet.annotate.datasets import dataset_name
from securitynet.errors import MalformedUpstreamError, NotFoundError
from securitynet.records import (
    AccuracyClaim,
    Attachment,
    DatasetLink,
    EntryRecord,
    EvaluationRecord,
    MetricResult,
    Purpose,
    Stage,
)
from securitynet.scrapers._fetch import fetch_bytes, is_url, read_text
from securitynet.settings import Settings

log = logging.getLogger(__name__)

NAME = "robustbench"
ENTRY_SOURCE = "robustbench"
NOT_RESOLVED = "not resolved"
ATTACK = "robust-accuracy"

_VENUE = re.compile(r"^(?P<venue>.*?)[,\s]+(?:[A-Z][a-z]{2,8}\s+)?(?P<year>(19|20)\d{2})$")
#: model_info field -> evaluation variant (robust accuracy in percent).
FIGURES: dict[str, str] = {
    "autoattack_acc": "autoattack",
    "reported": "reported",
    "corruptions_acc": "corruptions",
    "corruptions_acc_3d": "corruptions-3d",
}


class ModelInfo(BaseModel):
    """One ``model_info`` file, as RobustBench writes it (strings for numbers)."""

    model_config = ConfigDict(extra="allow")

    link: str | None = None
    name: str | None = None
    authors: str | None = None
    additional_data: bool | None = None
    number_forward_passes: int | None = None
    dataset: str
    venue: str | None = None
    architecture: str | None = None
    eps: str | float | None = None
    clean_acc: str | float | None = None
    reported: str | float | None = None
    autoattack_acc: str | float | None = None
    corruptions_acc: str | float | None = None
    corruptions_acc_3d: str | float | None = None
    corruptions_mce: str | float | None = None
    corruptions_mce_3d: str | float | None = None
    unreliable: bool | None = None
    footnote: str | None = None


def parse_number(value: str | float | None, *, what: str) -> float | None:
    """``"68.38"`` -> 68.38, ``"8/255"`` -> 0.0314, ``""``/``"None"``/None -> None."""
    if value is None or isinstance(value, float):
        return value
    text = str(value).strip()
    if text in ("", "None", "null", "-"):
        return None
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise MalformedUpstreamError(f"{what}: not a number: {value!r}", value=value) from exc


def parse_venue(text: str | None) -> tuple[str | None, int | None]:
    """``"NeurIPS 2022"`` -> ("NeurIPS", 2022); ``"arXiv, Mar 2021"`` -> ("arXiv", 2021)."""
    if not text or not text.strip():
        return None, None
    found = _VENUE.match(text.strip())
    if found is None:
        return text.strip(), None
    return found.group("venue").strip() or None, int(found.group("year"))


class RobustBenchImporter:
    name = NAME
    entry_source = ENTRY_SOURCE

    def default_location(self, settings: Settings) -> str:
        return settings.robustbench_model_info

    def complete(self, location: str) -> bool:
        """A folder or an archive is the whole set; a single file is not (nothing is marked
        removed)."""
        if is_url(location):
            return _is_archive(location)
        return Path(location).expanduser().is_dir()

    def iter_items(self, location: str, settings: Settings) -> Iterator[EntryRecord | Attachment]:
        for key, text, origin in _documents(location, settings):
            yield from build_items(key, text, origin=origin)


def _documents(
    location: str, settings: Settings
) -> Iterator[tuple[tuple[str, str, str], str, str]]:
    """(dataset, threat model, name), text, where it came from."""
    if is_url(location) and _is_archive(location):
        yield from _archive_documents(fetch_bytes(location, settings, what=NAME), location)
        return
    if is_url(location):
        parts = [p for p in urlsplit(location).path.split("/") if p]
        if len(parts) < 3 or not parts[-1].endswith(".json"):
            raise NotFoundError(
                f"{NAME}: a URL must name one model_info JSON file (…/<dataset>/<threat>/<name>.json): {location}",
                hint="For every model, give a local clone's model_info folder as PATH.",
                url=location,
            )
        key = (parts[-3], parts[-2], parts[-1].removesuffix(".json"))
        yield key, read_text(location, settings, what=NAME), location
        return
    root = Path(location).expanduser()
    if root.is_file():
        yield (
            (root.parent.parent.name, root.parent.name, root.stem),
            read_text(str(root), settings, what=NAME),
            str(root),
        )
        return
    if not root.is_dir():
        raise NotFoundError(f"{NAME}: no folder or file {root}", path=str(root))
    files = sorted(root.glob("*/*/*.json"))
    if not files:
        raise NotFoundError(
            f"{NAME}: no <dataset>/<threat>/<name>.json under {root}",
            hint="Give RobustBench's model_info folder.",
            path=str(root),
        )
    for path in files:
        rel = path.relative_to(root)
        yield (rel.parts[0], rel.parts[1], path.stem), path.read_text(encoding="utf-8"), str(rel)


def _is_archive(location: str) -> bool:
    path = urlsplit(location).path
    return path.endswith((".tar.gz", ".tgz")) or "/tar.gz/" in path


def _archive_documents(blob: bytes, origin: str) -> Iterator[tuple[tuple[str, str, str], str, str]]:
    """``model_info/<dataset>/<threat>/<name>.json`` members of a .tar.gz, read in memory."""
    import io
    import tarfile

    found = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
            for member in archive:
                parts = member.name.split("/")
                if not member.isfile() or "model_info" not in parts:
                    continue
                rel = parts[parts.index("model_info") + 1 :]
                if len(rel) != 3 or not rel[2].endswith(".json"):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                found += 1
                key = (rel[0], rel[1], rel[2].removesuffix(".json"))
                yield key, handle.read().decode("utf-8"), "/".join(rel)
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as exc:
        raise MalformedUpstreamError(
            f"{NAME}: {origin} is not a readable .tar.gz: {exc}", url=origin
        ) from exc
    if not found:
        raise NotFoundError(
            f"{NAME}: no model_info/<dataset>/<threat>/<name>.json in {origin}", url=origin
        )


def build_items(
    key: tuple[str, str, str], text: str, *, origin: str
) -> Iterator[EntryRecord | Attachment]:
    """The entry of one model_info file, and an attachment with its robust-accuracy figures."""
    data_code, threat, model = key
    try:
        info = ModelInfo.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise MalformedUpstreamError(f"{NAME}: {origin}: {exc}", path=origin) from exc
    dataset = dataset_name(info.dataset or data_code)
    evidence = f"{NAME} model_info {origin}"
    venue, year = parse_venue(info.venue)
    eps = parse_number(info.eps, what=f"{origin} eps")
    clean = parse_number(info.clean_acc, what=f"{origin} clean_acc")
    claims = []
    if clean is not None:
        claims.append(
            AccuracyClaim(
                dataset=dataset,
                split="test",
                value=clean,
                source=NAME,
                evidence=f"{evidence}: clean_acc",
            )
        )
    record = EntryRecord(
        id=f"{ENTRY_SOURCE}:{data_code}/{threat}/{model}",
        paper=info.link or None,
        purpose=Purpose.SECURITY,
        venue=venue,
        year=year,
        datasets=[
            DatasetLink(
                dataset=dataset,
                raw_name=info.dataset,
                stage=Stage.TRAIN,
                source=NAME,
                evidence=evidence,
            )
        ],
        claims=claims,
        evidence={"paper": evidence, "venue": evidence, "year": evidence},
        extra_facts={
            "title": info.name or None,
            "authors": info.authors or None,
            "threat_model": threat,
            "epsilon": eps,
            "epsilon_text": None if info.eps is None else str(info.eps),
            "architecture_text": info.architecture or None,
            "extra_data": info.additional_data,
            "forward_passes": info.number_forward_passes,
            "unreliable": info.unreliable,
            "footnote": info.footnote or None,
            "weights_status": NOT_RESOLVED,
        },
        raw=json.loads(text),
    )
    yield record
    config: dict[str, Any] = {"threat_model": threat, "epsilon": eps}
    evaluations = []
    for field, variant in FIGURES.items():
        value = parse_number(getattr(info, field), what=f"{origin} {field}")
        if value is None:
            continue
        if not 0 <= value <= 100:
            raise MalformedUpstreamError(
                f"{origin}: {field} {value} is not a percentage", value=value
            )
        metrics = [MetricResult(metric="accuracy", value=value)]
        if variant.startswith("corruptions"):
            mce = parse_number(getattr(info, field.replace("_acc", "_mce")), what=f"{origin} mce")
            if mce is not None:
                metrics.append(MetricResult(metric="mce", value=mce))
        evaluations.append(
            EvaluationRecord(
                attack=ATTACK,
                variant=variant,
                source=NAME,
                dataset=dataset,
                config=config,
                evidence=f"{evidence}: {field}",
                metrics=metrics,
            )
        )
    if evaluations:
        yield Attachment(
            entry_id=record.id, source=NAME, evidence=evidence, evaluations=evaluations
        )
