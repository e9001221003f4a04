"""Model cards (a Hub repository's README.md) -> accuracy claims, training chain, licence.

A card is YAML front matter (``license``, ``datasets``, ``base_model``, ``model-index``)
followed by a Markdown body. Both are read:

* ``model-index`` with huggingface_hub's own parser (:func:`model_index_to_eval_results`)
  and, where the library refuses it (a result without a ``dataset:`` block, the legacy
  ``model_index`` key, ``metric:`` instead of ``metrics:``), by walking the raw YAML;
* the machine-written blocks of the body: the Trainer's "results on the evaluation set"
  list, AutoTrain's "Validation Metrics", the Trainer's ``eval_accuracy = 0.98`` log,
  ``Acc1: 94.4`` / ``Top-1 Accuracy: 83.3%`` lines, and Markdown tables in which a row
  names this model;
* prose: "a fine-tuned version of [x](...) on the y dataset", "a top-1 accuracy of 80.5%".

Figures that are not this model's claim are kept out, each with a reason in
:attr:`CardAnnotation.rejected`: another model's row of a comparison table, approximate or
relative figures ("~0.5% top1 more than v1"), training-set figures, per-epoch logs.
Every claim carries its evidence: the model-index path, or the line of the card.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from securitynet.annotate.datasets import canonical_dataset, dataset_name
from securitynet.records import AccuracyClaim, ClaimKind, DatasetLink, Metric, Stage

log = logging.getLogger(__name__)

#: Dataset name used for a claim when neither the claim nor the card names one.
UNKNOWN_DATASET = "unknown"

#: Data sets that are (almost) only ever pre-training data: when a card's ``datasets:``
#: lists one of these beside another, this one is the pre-training step.
PRETRAINING_SCALE = frozenset(
    {
        "ImageNet-21k", "ImageNet-12k", "JFT-300M", "JFT-3B", "LAION-2B", "LAION-400M", "DataComp-1B",
        "WebLI", "OpenAI-WIT", "Instagram-1B", "Instagram-3.5B", "YFCC100M", "Merged-38M", "Merged-30M",
    }
)  # fmt: skip

_EVIDENCE_MAX = 240


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejected:
    """A figure seen on the card that is not this model's accuracy claim."""

    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class BaseModel:
    """The model this one was fine-tuned from, as the card names it."""

    id: str
    evidence: str


@dataclass
class CardAnnotation:
    """What one card says about its model."""

    metadata: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    claims: list[AccuracyClaim] = field(default_factory=list)
    datasets: list[DatasetLink] = field(default_factory=list)
    base_models: list[BaseModel] = field(default_factory=list)
    licence: str | None = None
    arxiv: list[str] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def final_dataset(self) -> str | None:
        trained = [d for d in self.datasets if d.stage is Stage.TRAIN]
        return trained[-1].dataset if trained else None


# --- small helpers -------------------------------------------------------------------------

_TOP1_KEYS = frozenset(
    {"accuracy", "acc", "top1", "top1accuracy", "top1acc", "acc1", "acc@1", "accuracytop1", "accuracy@1",
     "top1acc%", "top1accuracy%", "accuracy%", "acc%", "top1%"}
)  # fmt: skip
_TOP5_KEYS = frozenset(
    {"top5", "top5accuracy", "top5acc", "acc5", "acc@5", "accuracytop5", "accuracy@5", "top5acc%",
     "top5accuracy%", "top5%"}
)  # fmt: skip


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9@%]", "", text.lower())


def metric_of(name: str | None) -> Metric | None:
    """The metric a name denotes (``Accuracy``, ``top-1``, ``Acc@5``, ``eval_accuracy``), or None.

    >>> metric_of("Accuracy"), metric_of("Top-5 Acc (%)"), metric_of("F1")
    (<Metric.TOP1: 'top1'>, <Metric.TOP5: 'top5'>, None)
    """
    if not name:
        return None
    key = _key(name)
    key = re.sub(r"^(eval|val|validation|test)", "", key) or key
    if key in _TOP1_KEYS:
        return Metric.TOP1
    if key in _TOP5_KEYS:
        return Metric.TOP5
    return None


def to_percent(value: Any, *, percent: bool = False) -> float | None:
    """An accuracy as a percentage, or None when ``value`` is not one.

    Fractions become percentages (0.9787 -> 97.87); values in (1, 100] are taken as
    percentages already; ``percent=True`` (a ``%`` sign or a "(%)" header) forces percent.

    >>> to_percent(0.9787), to_percent("94.4175"), to_percent("97.3%"), to_percent([])
    (97.87, 94.4175, 97.3, None)
    """
    parsed = _accuracy(value, percent=percent)
    return parsed[0] if parsed else None


def _accuracy(value: Any, *, percent: bool = False) -> tuple[float, float] | None:
    """(percent, resolution): the resolution is half a unit of the last digit written, in percent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text.endswith("%"):
            percent, text = True, text[:-1].strip()
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, (int, float)):
        number, text = float(value), repr(value)
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text.lower() else 0
    half_unit = 0.5 * 10.0**-decimals
    if percent or number > 1:
        return (round(number, 6), half_unit) if number <= 100 else None
    return round(number * 100, 6), half_unit * 100


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EVIDENCE_MAX else text[: _EVIDENCE_MAX - 1] + "…"


def _norm_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_HUB_URL = re.compile(
    r"https?://(?:www\.)?huggingface\.co/(?!datasets/|spaces/)([\w.\-]+(?:/[\w.\-]+)?)/?$"
)


_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")


def _strip_markup(cell: str) -> str:
    """Text of a Markdown fragment: links to their text, emphasis and code marks dropped."""
    cell = _LINK.sub(r"\1", cell)
    return _EMPHASIS.sub(r"\2", cell).strip()


# --- front matter --------------------------------------------------------------------------

_FRONT_MATTER = re.compile(
    r"\A\ufeff?[ \t\r\n]*---[ \t]*\r?\n(?P<yaml>.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M
)


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(YAML text or None, body)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    return match.group("yaml"), text[match.end() :]


def load_front_matter(text: str) -> tuple[dict[str, Any], str, str | None]:
    """(metadata, body, error). Malformed YAML gives empty metadata and an error message."""
    raw, body = split_front_matter(text)
    if raw is None:
        return {}, body, None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        return {}, body, f"card front matter is not valid YAML{where}: {problem}"
    if data is None:
        return {}, body, None
    if not isinstance(data, dict):
        return {}, body, f"card front matter is a {type(data).__name__}, not a mapping"
    return data, body, None


# --- model-index ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Result:
    """One metric of one model-index result, as read (before it becomes a claim)."""

    model_name: str | None
    dataset_name: str | None
    dataset_type: str | None
    split: str | None
    metric_type: str | None
    metric_name: str | None
    value: Any
    verified: bool
    path: str


def _library_results(model_index: Any) -> list[_Result]:
    """Read ``model-index`` with huggingface_hub; raises what the library raises."""
    from huggingface_hub.repocard_data import model_index_to_eval_results

    name, results = model_index_to_eval_results(model_index)
    out = []
    for i, r in enumerate(results):
        out.append(
            _Result(
                model_name=name,
                dataset_name=r.dataset_name,
                dataset_type=r.dataset_type,
                split=r.dataset_split,
                metric_type=r.metric_type,
                metric_name=r.metric_name,
                value=r.metric_value,
                verified=bool(r.verified),
                path=f"model-index result {i}",
            )
        )
    return out


def _raw_results(model_index: Any) -> Iterator[_Result]:
    """Walk a model-index as plain YAML, tolerating what the library refuses."""
    models = model_index if isinstance(model_index, list) else [model_index]
    for m, model in enumerate(models):
        if not isinstance(model, Mapping):
            continue
        name = model.get("name")
        results = model.get("results") or []
        if isinstance(results, Mapping):
            results = [results]
        for r, result in enumerate(results if isinstance(results, list) else []):
            if not isinstance(result, Mapping):
                continue
            dataset: Mapping[str, Any] = (
                result["dataset"] if isinstance(result.get("dataset"), Mapping) else {}
            )
            metrics = result.get("metrics", result.get("metric")) or []
            if isinstance(metrics, Mapping):
                metrics = [metrics]
            for k, metric in enumerate(metrics if isinstance(metrics, list) else []):
                if not isinstance(metric, Mapping):
                    continue
                yield _Result(
                    model_name=str(name) if name is not None else None,
                    dataset_name=_str_or_none(dataset.get("name")),
                    dataset_type=_str_or_none(dataset.get("type")),
                    split=_str_or_none(dataset.get("split")),
                    metric_type=_str_or_none(metric.get("type")),
                    metric_name=_str_or_none(metric.get("name")),
                    value=metric.get("value"),
                    verified=bool(metric.get("verified")),
                    path=f"model-index[{m}].results[{r}].metrics[{k}]",
                )


def _str_or_none(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def read_model_index(metadata: Mapping[str, Any]) -> tuple[list[_Result], str, list[str]]:
    """(results, how they were read, errors) for the card's ``model-index``."""
    key = (
        "model-index"
        if "model-index" in metadata
        else "model_index"
        if "model_index" in metadata
        else None
    )
    if key is None:
        return [], "", []
    model_index = metadata[key]
    if not model_index:
        return [], "", [f"card has an empty {key}"]
    if key == "model-index":
        try:
            return _library_results(model_index), "huggingface_hub", []
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            how = f"raw YAML; huggingface_hub refused it: {type(exc).__name__} {exc}"
    else:
        how = "raw YAML; legacy key model_index"
    results = list(_raw_results(model_index))
    errors = [] if results else [f"card's {key} has no readable metric ({how})"]
    return results, how, errors


# --- the body --------------------------------------------------------------------------------

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_BOLD_HEADING = re.compile(r"^\s*\*\*([^*]+)\*\*\s*:?\s*$")
_LIST_ITEM = re.compile(
    r"^\s*[-*+]\s+(?:\*\*)?(?P<name>[^:*\n]{1,60}?)(?:\*\*)?\s*:\s*(?:\*\*)?(?P<value>[-+]?[0-9][0-9.,]*\s*%?)(?:\*\*)?\s*$"
)
_TRAINER_EVAL = re.compile(
    r"achieves the following results on the (?P<set>evaluation|test|validation) set", re.I
)
_FINETUNED = re.compile(
    r"fine-?tuned version of\s+(?:\[(?P<text>[^\]\n]+)\]\((?P<url>[^)\s]+)\)|`?(?P<plain>[\w./\-]+)`?)"
    r"(?:\s+on\s+(?:the\s+)?(?P<ds>[^\n]+?)\s+dataset)?",
    re.I,
)
_LOG_LINE = re.compile(
    r"^\s*(?P<prefix>eval|test|validation|val)_(?P<name>[a-z0-9_@]+)\s*[=:]\s*(?P<value>[-+]?[0-9][0-9.]*%?)\s*$",
    re.I,
)
_KV_LINE = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*)?(?P<name>(?:top[- ]?[15]|acc[@ ]?[15])(?:[- ]acc(?:uracy)?)?|(?:top[- ]?[15][- ])?accuracy)"
    r"(?:\*\*)?\s*(?:\(%\))?\s*[:=]\s*(?:\*\*)?(?P<value>\d+(?:\.\d+)?)\s*(?P<pct>%)?(?:\*\*)?(?P<rest>.*)$",
    re.I,
)
_PROSE_METRIC_FIRST = re.compile(
    r"(?P<name>top[- ]?[15])[- ]?acc(?:uracy)?\s+(?:of|is|was|by|=|:)\s*(?P<value>\d+(?:\.\d+)?)\s*%",
    re.I,
)
_PROSE_VALUE_FIRST = re.compile(
    r"(?P<value>\d+(?:\.\d+)?)\s*%\s*(?:\)\s*)?(?P<name>top[- ]?[15](?:[- ]acc(?:uracy)?)?|accuracy)",
    re.I,
)
_APPROX = re.compile(
    r"[~≈]|\\~|\babout\b|\bapprox|\baround\b|\broughly\b|\bnearly\b|\balmost\b|\bup to\b", re.I
)
_RELATIVE = re.compile(
    r"\bthan\b|\bmore accurate\b|\bless accurate\b|\bimprov|\bhigher\b|\blower\b|\bgain|\bdrop|\bcompared\b|"
    r"\bvs\.?\b|\bbetter\b|\bworse\b|\boutperform|\bincrease|\bdecrease|\bdifference\b|\+\s*\d",
    re.I,
)
_DATASET_PHRASE = re.compile(
    r"(?:(?P<split>evaluation|validation|test|val) set of|\bon|\bin)\s+(?:the\s+)?"
    r"(?P<ds>[A-Z][A-Za-z0-9\-]*(?:[ -]\d+[kK]\b)?)"
)
_TIMM_DATASET = re.compile(
    r"^\s*[-*]\s*\*\*(?P<key>(?:Pretrain(?:ing)? )?Dataset):\*\*\s*(?P<value>.+?)\s*$", re.I
)
_ARXIV = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})", re.I)
_NON_CLASSIFICATION = re.compile(r"retrieval|detection|segmentation|captioning|\bvqa\b", re.I)
_TRAIN_FIGURE = re.compile(r"\btrain(?:ing)?[_ ](?:set[_ ])?acc", re.I)

_MODEL_COLUMNS = frozenset(
    {"model", "models", "name", "modelname", "checkpoint", "variant", "arch", "architecture"}
)
_DATASET_COLUMNS = frozenset({"dataset", "data", "evaldataset", "benchmark"})
_SIZE_COLUMNS = frozenset(
    {"imgsize", "imagesize", "resolution", "res", "inputsize", "testsize", "evalsize"}
)
_LOG_COLUMNS = frozenset({"epoch", "step", "trainingloss", "validationloss", "iteration"})


@dataclass
class _Line:
    number: int
    text: str
    heading: str  # the nearest heading above (lower case)


def _body_lines(body: str) -> list[_Line]:
    """The body's lines outside code fences, each with the heading it sits under."""
    body = _HTML_COMMENT.sub("", body)
    out: list[_Line] = []
    heading = ""
    fenced = False
    for number, text in enumerate(body.splitlines()):
        if _FENCE.match(text):
            fenced = not fenced
            continue
        if fenced:
            continue
        match = _HEADING.match(text) or _BOLD_HEADING.match(text)
        if match:
            heading = match.groups()[-1].lower()
        out.append(_Line(number, text, heading))
    return out


def _title(lines: Sequence[_Line]) -> str | None:
    for line in lines:
        match = _HEADING.match(line.text)
        if match and match.group(1) == "#":
            title = _strip_markup(match.group(2))
            title = re.sub(r"^model card for\s+", "", title, flags=re.I).strip()
            return title or None
    return None


# --- the annotator -----------------------------------------------------------------------------


@dataclass
class _Draft:
    """A claim before its data set is settled (the card's training chain decides defaults)."""

    metric: Metric
    value: float
    resolution: float
    dataset_raw: str | None
    split: str
    evidence: str
    kind: ClaimKind = ClaimKind.CLAIMED
    img_size: int | None = None
    from_index: bool = False


class _CardReader:
    def __init__(
        self, *, repo_id: str, metadata: dict[str, Any], body: str, source: str, url: str | None
    ) -> None:
        self.repo_id = repo_id
        self.metadata = metadata
        self.lines = _body_lines(body)
        self.body = body
        self.source = source
        self.url = url
        self.out = CardAnnotation(metadata=metadata, title=_title(self.lines))
        self.used: set[int] = set()  # body lines already read as a claim
        self.drafts: list[_Draft] = []
        self.prose_dataset: tuple[str, str] | None = None  # (raw name, evidence)

    # -- names this model goes by (to pick its row out of a comparison table)
    def aliases(self) -> set[str]:
        names = {self.repo_id, self.repo_id.rsplit("/", 1)[-1]}
        if self.out.title:
            names.add(self.out.title)
        mi = self.metadata.get("model-index") or self.metadata.get("model_index")
        if isinstance(mi, list):
            names.update(str(m["name"]) for m in mi if isinstance(m, Mapping) and m.get("name"))
        return {_norm_name(n) for n in names if _norm_name(n)}

    def read(self) -> CardAnnotation:
        self._licence()
        self._base_models_and_prose_dataset()
        self._model_index()
        self._trainer_block()
        self._autotrain_block()
        self._log_lines()
        self._tables()
        self._kv_lines()
        self._prose()
        self._arxiv()
        self._training_chain()
        self._settle_claims()
        return self.out

    # -- metadata
    def _licence(self) -> None:
        lic = self.metadata.get("license")
        if isinstance(lic, list):
            lic = lic[0] if lic else None
        if isinstance(lic, str) and lic.strip():
            lic = lic.strip()
            if lic == "other" and isinstance(self.metadata.get("license_name"), str):
                lic = self.metadata["license_name"].strip()
            self.out.licence = lic
            self.out.evidence["licence"] = "card metadata: license"

    def _base_models_and_prose_dataset(self) -> None:
        base = self.metadata.get("base_model")
        for b in [base] if isinstance(base, str) else base if isinstance(base, list) else []:
            if isinstance(b, str) and b.strip():
                self._add_base(b.strip(), "card metadata: base_model")
        for line in self.lines:
            match = _FINETUNED.search(line.text)
            if not match:
                continue
            if match.group("url"):
                hub = _HUB_URL.match(match.group("url"))
                base_id = hub.group(1) if hub else match.group("text").strip()
            else:
                base_id = match.group("plain").strip().rstrip(".")
            sentence = _clip(match.group(0))
            self._add_base(base_id, f"card: '{sentence}'")
            ds = match.group("ds")
            if ds and self.prose_dataset is None:
                ds = _strip_markup(ds)
                if not re.fullmatch(r"(?:an?\s+)?(?:unknown|none|custom)", ds, re.I):
                    self.prose_dataset = (ds, f"card: '{sentence}'")
            break

    def _add_base(self, base_id: str, evidence: str) -> None:
        if (
            base_id
            and base_id != self.repo_id
            and all(b.id != base_id for b in self.out.base_models)
        ):
            self.out.base_models.append(BaseModel(base_id, evidence))

    def _model_index(self) -> None:
        results, how, errors = read_model_index(self.metadata)
        self.out.errors.extend(errors)
        for r in results:
            metric = metric_of(r.metric_type) or metric_of(r.metric_name)
            label = r.metric_name or r.metric_type or "?"
            if metric is None:
                continue
            parsed = _accuracy(r.value)
            if parsed is None:
                self.out.errors.append(f"{r.path}: {label} value {r.value!r} is not a number")
                continue
            kind = ClaimKind.MEASURED if r.verified else ClaimKind.CLAIMED
            evidence = f"card {r.path}: {label} = {r.value!r}" + (f" ({how})" if how else "")
            if r.verified:
                evidence += "; verified: true (evaluated by the Hub)"
            self.drafts.append(
                _Draft(
                    metric=metric,
                    value=parsed[0],
                    resolution=parsed[1],
                    dataset_raw=r.dataset_name or r.dataset_type,
                    split=(r.split or "validation"),
                    evidence=evidence,
                    kind=kind,
                    from_index=True,
                )
            )

    # -- body blocks
    def _list_after(self, start: int) -> Iterator[tuple[_Line, str, str]]:
        """The ``- Name: value`` items right after line index ``start`` (blank lines allowed)."""
        for line in self.lines[start + 1 :]:
            if not line.text.strip():
                continue
            match = _LIST_ITEM.match(line.text)
            if not match:
                if _HEADING.match(line.text) or not line.text.lstrip().startswith(("-", "*", "+")):
                    return
                continue
            yield line, match.group("name"), match.group("value")

    def _trainer_block(self) -> None:
        for i, line in enumerate(self.lines):
            match = _TRAINER_EVAL.search(line.text)
            if not match:
                continue
            split = "test" if match.group("set").lower() == "test" else "validation"
            for item, name, value in self._list_after(i):
                self._list_claim(item, name, value, split=split, what="evaluation-set result")
            self.used.add(line.number)

    def _autotrain_block(self) -> None:
        for i, line in enumerate(self.lines):
            match = _HEADING.match(line.text)
            if match and re.fullmatch(r"validation metrics", match.group(2).strip(), re.I):
                for item, name, value in self._list_after(i):
                    self._list_claim(
                        item, name, value, split="validation", what="AutoTrain validation metric"
                    )

    def _list_claim(self, line: _Line, name: str, value: str, *, split: str, what: str) -> None:
        self.used.add(line.number)
        metric = metric_of(name)
        if metric is None:
            return
        parsed = _accuracy(value)
        if parsed is None:
            self.out.errors.append(f"card {what} {name!r} = {value!r} is not an accuracy")
            return
        self.drafts.append(
            _Draft(metric, *parsed, None, split, f"card ({what}): '{_clip(line.text.strip())}'")
        )

    def _log_lines(self) -> None:
        for line in self.lines:
            match = _LOG_LINE.match(line.text)
            if not match or line.number in self.used:
                continue
            metric = metric_of(match.group("name"))
            if metric is None:
                continue
            self.used.add(line.number)
            parsed = _accuracy(match.group("value"))
            if parsed is None:
                continue
            split = "test" if match.group("prefix").lower() == "test" else "validation"
            self.drafts.append(
                _Draft(metric, *parsed, None, split,
                       f"card (Trainer metrics log): '{_clip(line.text.strip())}'")
            )  # fmt: skip

    def _kv_lines(self) -> None:
        for line in self.lines:
            if line.number in self.used:
                continue
            match = _KV_LINE.match(line.text)
            if not match:
                continue
            name = match.group("name")
            bare_accuracy = _key(name) == "accuracy"
            if bare_accuracy and not re.search(
                r"eval|result|metric|performance|accuracy|benchmark", line.heading
            ):
                continue  # a stray "Accuracy: x" outside any results section
            if "train" in line.heading and "eval" not in line.heading:
                self.out.rejected.append(Rejected(_clip(line.text), "a training-set figure"))
                continue
            self.used.add(line.number)
            rest = match.group("rest") or ""
            if _APPROX.search(line.text) or _RELATIVE.search(rest):
                self.out.rejected.append(
                    Rejected(_clip(line.text), "approximate or relative figure")
                )
                continue
            parsed = _accuracy(match.group("value"), percent=bool(match.group("pct")))
            metric = metric_of(name)
            if parsed is None or metric is None:
                continue
            ds = _DATASET_PHRASE.search(rest)
            self.drafts.append(
                _Draft(metric, *parsed, ds.group("ds") if ds else None, "validation",
                       f"card: '{_clip(line.text.strip())}'")
            )  # fmt: skip

    def _prose(self) -> None:
        for line in self.lines:
            if line.number in self.used or not line.text.strip():
                continue
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line.text):
                self._prose_sentence(line, sentence)

    def _prose_sentence(self, line: _Line, sentence: str) -> None:
        hits = list(_PROSE_METRIC_FIRST.finditer(sentence))
        hits_value_first = [] if hits else list(_PROSE_VALUE_FIRST.finditer(sentence))
        if not hits and not hits_value_first:
            return
        if _TRAIN_FIGURE.search(sentence):
            self.out.rejected.append(Rejected(_clip(sentence), "a training-set figure"))
            return
        if _APPROX.search(sentence) or _RELATIVE.search(sentence):
            self.out.rejected.append(Rejected(_clip(sentence), "approximate or relative figure"))
            return
        self.used.add(line.number)
        ds_raw, split = None, "validation"
        for match in _DATASET_PHRASE.finditer(sentence):
            candidate = match.group("ds")
            if match.group("split") or canonical_dataset(candidate):
                ds_raw = candidate
                if match.group("split") and match.group("split").lower() == "test":
                    split = "test"
                break
        for match in hits or hits_value_first:
            metric = metric_of(match.group("name"))
            parsed = _accuracy(match.group("value"), percent=True)
            if metric is None or parsed is None:
                continue
            self.drafts.append(_Draft(metric, *parsed, ds_raw, split, f"card: '{_clip(sentence)}'"))

    # -- tables
    def _tables(self) -> None:
        lines = self.lines
        i = 0
        while i + 1 < len(lines):
            if _is_row(lines[i].text) and _is_separator(lines[i + 1].text):
                header = _cells(lines[i].text)
                rows: list[_Line] = []
                j = i + 2
                while j < len(lines) and _is_row(lines[j].text):
                    rows.append(lines[j])
                    j += 1
                context = (
                    " ".join(ln.text for ln in lines[max(0, i - 3) : i]) + " " + lines[i].heading
                )
                self._table(header, rows, context)
                i = j
            else:
                i += 1

    def _table(self, header: list[str], rows: list[_Line], context: str) -> None:
        keys = [_key(h) for h in header]
        metric_cols = [(c, metric_of(h), "%" in h) for c, h in enumerate(header) if metric_of(h)]
        if not metric_cols or not rows:
            return
        for row in rows:
            self.used.add(row.number)
        if any(k.replace("%", "") in _LOG_COLUMNS for k in keys):
            return  # a per-epoch training log, not a result
        if _NON_CLASSIFICATION.search(context):
            self.out.rejected.extend(
                Rejected(_clip(r.text), "not a classification result table") for r in rows
            )
            return
        model_col = next(
            (c for c, k in enumerate(keys) if k.replace("%", "") in _MODEL_COLUMNS), None
        )
        data_col = next((c for c, k in enumerate(keys) if k in _DATASET_COLUMNS), None)
        size_col = next((c for c, k in enumerate(keys) if k in _SIZE_COLUMNS), None)
        aliases = self.aliases()
        for row in rows:
            cells = _cells(row.text)
            if model_col is not None:
                if model_col >= len(cells):
                    continue
                raw_cell = cells[model_col]
                name = _strip_markup(raw_cell)
                links = [_HUB_URL.match(url) for _, url in _LINK.findall(raw_cell)]
                mine = _norm_name(name) in aliases or any(
                    m and m.group(1) == self.repo_id for m in links
                )
                if not mine:
                    self.out.rejected.append(
                        Rejected(_clip(row.text), f"row of another model ({name})")
                    )
                    continue
            elif len(rows) > 1:
                self.out.rejected.append(
                    Rejected(_clip(row.text), "table row without a model name")
                )
                continue
            dataset_raw = (
                _strip_markup(cells[data_col])
                if data_col is not None and data_col < len(cells)
                else None
            )
            img_size = (
                _int_or_none(cells[size_col])
                if size_col is not None and size_col < len(cells)
                else None
            )
            for col, metric, pct in metric_cols:
                if metric is None or col >= len(cells):
                    continue
                cell = _strip_markup(cells[col])
                parsed = _accuracy(cell, percent=pct or _looks_percent(cell))
                if parsed is None:
                    continue
                self.drafts.append(
                    _Draft(metric, *parsed, dataset_raw or None, "validation",
                           f"card table row: '{_clip(row.text.strip())}' (column {header[col].strip()!r})",
                           img_size=img_size)
                )  # fmt: skip

    # -- papers
    def _arxiv(self) -> None:
        seen: list[str] = []
        for match in _ARXIV.finditer(self.body):
            if match.group(1) not in seen:
                seen.append(match.group(1))
        self.out.arxiv = seen

    # -- training chain
    def _training_chain(self) -> None:
        links: list[DatasetLink] = []

        def add(raw: str, stage: Stage, evidence: str) -> None:
            name = dataset_name(raw)
            if not name or any(d.dataset == name for d in links):
                return
            links.append(
                DatasetLink(dataset=name, raw_name=raw if raw != name else None, stage=stage,
                            source=self.source, evidence=evidence)
            )  # fmt: skip

        for base in self.out.base_models:
            for raw in _datasets_in_name(base.id):
                add(raw, Stage.PRETRAIN, f"base model {base.id} (name)")
        timm_lines = [(m, ln) for ln in self.lines if (m := _TIMM_DATASET.match(ln.text))]
        for match, line in timm_lines:
            if match.group("key").lower().startswith("pretrain"):
                for raw in _split_names(match.group("value")):
                    add(raw, Stage.PRETRAIN, f"card: '{_clip(line.text.strip())}'")
        trained: list[tuple[str, str]] = []
        if self.prose_dataset:
            trained = [self.prose_dataset]
        else:
            trained = [
                (raw, f"card: '{_clip(line.text.strip())}'")
                for match, line in timm_lines
                if not match.group("key").lower().startswith("pretrain")
                for raw in _split_names(match.group("value"))
            ]
        if not trained:
            listed = self.metadata.get("datasets")
            listed = (
                [listed] if isinstance(listed, str) else listed if isinstance(listed, list) else []
            )
            names = [str(d).strip() for d in listed if isinstance(d, (str, int)) and str(d).strip()]
            big = [n for n in names if dataset_name(n) in PRETRAINING_SCALE]
            if big and len(big) < len(names):
                for raw in big:
                    add(raw, Stage.PRETRAIN, "card metadata: datasets")
                names = [n for n in names if n not in big]
            trained = [(n, "card metadata: datasets") for n in names]
        for raw, evidence in trained:
            name = dataset_name(raw)
            links = [d for d in links if not (d.dataset == name and d.stage is Stage.PRETRAIN)]
            add(raw, Stage.TRAIN, evidence)
        self.out.datasets = links

    # -- claims
    def _settle_claims(self) -> None:
        default = self.out.final_dataset
        claims: list[tuple[_Draft, AccuracyClaim]] = []
        for draft in self.drafts:
            dataset = self._claim_dataset(draft.dataset_raw, default)
            duplicate = next((c for d, c in claims if _same_claim(d, c, draft, dataset)), None)
            if duplicate is not None:
                continue
            claims.append(
                (
                    draft,
                    AccuracyClaim(
                        dataset=dataset,
                        split=draft.split,
                        metric=draft.metric,
                        value=draft.value,
                        img_size=draft.img_size,
                        kind=draft.kind,
                        source=self.source,
                        evidence=draft.evidence,
                        url=self.url,
                    ),
                )
            )
        self.out.claims = [c for _, c in claims]

    def _claim_dataset(self, raw: str | None, default: str | None) -> str:
        """The claim's data set: as stated, else the card's final training set, else unknown.

        A stated name that is the training set spelt differently (``image_folder`` beside
        the prose's ``imagefolder``) is the training set, so the claim and the chain agree.
        """
        if not raw:
            return default or UNKNOWN_DATASET
        name = dataset_name(raw)
        if default and canonical_dataset(raw) is None:
            trained = next((d for d in self.out.datasets if d.dataset == default), None)
            spellings = {_norm_name(default), _norm_name(trained.raw_name or "") if trained else ""}
            if _norm_name(raw) in spellings:
                return default
        return name


def _same_claim(kept: _Draft, claim: AccuracyClaim, new: _Draft, dataset: str) -> bool:
    """The same figure stated twice (model-index 0.98731 and the body's rounded 0.9873)."""
    if (
        claim.metric is not new.metric
        or claim.kind is not new.kind
        or claim.img_size != new.img_size
    ):
        return False
    if claim.dataset != dataset and new.dataset_raw is not None and kept.dataset_raw is not None:
        return False
    return abs(claim.value - new.value) <= max(kept.resolution, new.resolution) + 1e-9


def _datasets_in_name(name: str) -> list[str]:
    """Data-set tokens in a model name: ``...-in21k`` -> ``in21k``, BEiT's ``pt22k`` -> ``in22k``."""
    out = []
    for token in re.split(r"[-_./]", name.lower()):
        token = re.sub(r"^(?:pt|ft)(?=\d+k$)", "in", token)
        if re.fullmatch(r"in(?:1|12|21|22)k", token) and canonical_dataset(token):
            out.append(token)
    return out


def _split_names(value: str) -> list[str]:
    return [
        p.strip() for p in re.split(r",|;|\band\b|\bthen\b|->", _strip_markup(value)) if p.strip()
    ]


def _is_row(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("|") and stripped.count("|") >= 2


def _is_separator(text: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*", text))


def _cells(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("|"):
        stripped = stripped[1:]
    if stripped.endswith("|"):
        stripped = stripped[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", stripped)]


def _int_or_none(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group(0)) if match else None


def _looks_percent(cell: str) -> bool:
    """A table value above 1 in a top-1 column is a percentage (timm's tables)."""
    try:
        return float(cell) > 1
    except ValueError:
        return False


# --- entry point ---------------------------------------------------------------------------


def parse_card(
    text: str | None,
    *,
    repo_id: str,
    metadata: Mapping[str, Any] | None = None,
    source: str = "hf",
    url: str | None = None,
) -> CardAnnotation:
    """Annotate one model card.

    ``text`` is the README (front matter and body); without it, ``metadata`` (the Hub's
    ``cardData``: the same front matter, already parsed) is read alone. With both, the
    README's own front matter wins, since it is what the revision holds.
    """
    errors: list[str] = []
    meta: dict[str, Any] = dict(metadata or {})
    body = ""
    if text is not None:
        if _looks_like_html_page(text):
            errors.append("README.md is an HTML page, not a model card")
        else:
            parsed, body, error = load_front_matter(text)
            if error:
                errors.append(error)
            if parsed:
                meta = parsed
    reader = _CardReader(repo_id=repo_id, metadata=meta, body=body, source=source, url=url)
    result = reader.read()
    result.errors[:0] = errors
    return result


def _looks_like_html_page(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


def card_needs_body(annotation: CardAnnotation, tags: Iterable[str] = ()) -> bool:
    """Whether a card read from metadata alone may be missing what only its body says.

    The body is worth a request when the metadata gives no accuracy claim, or when the
    card was written by the Trainer and the metadata does not name the base model (the
    Trainer names it in a sentence of the body).
    """
    if not annotation.claims:
        return True
    return "generated_from_trainer" in set(tags) and not annotation.base_models
