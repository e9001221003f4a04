"""The Markdown body of a model card: accuracy figures, the sentence naming the base
model, the data-set lines timm writes, and paper links.

Machine-written blocks come first: the Trainer's "It achieves the following results on the
evaluation set" list, AutoTrain's "## Validation Metrics", the Trainer's metrics log
(``eval_accuracy = 0.9894``), ``Acc1: 94.4`` / ``Top-1 Accuracy: 83.3%`` lines, and
Markdown tables, of which only the row naming this model counts. Prose is read last
("a top-1 accuracy of 80.5% on ImageNet"). A line is read as a figure once.

What is not this model's claim is kept out with a reason: other rows of a comparison table,
approximate or relative figures ("~0.5% top1 more than v1"), training-set figures,
per-epoch training logs, retrieval or detection tables. Code blocks and HTML comments are
not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from securitynet.annotate.datasets import canonical_dataset
from securitynet.annotate.figures import (
    Figure,
    Rejected,
    clip,
    key,
    metric_of,
    norm_name,
    parse_accuracy,
)
from securitynet.records import Metric, Stage

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_BOLD_HEADING = re.compile(r"^\s*\*\*([^*]+)\*\*\s*:?\s*$")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)[^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_HUB_URL = re.compile(
    r"https?://(?:www\.)?huggingface\.co/(?!datasets/|spaces/)([\w.\-]+(?:/[\w.\-]+)?)/?$"
)
_LIST_ITEM = re.compile(
    r"^\s*[-*+]\s+(?:\*\*)?(?P<name>[^:*\n]{1,60}?)(?:\*\*)?\s*:\s*(?:\*\*)?"
    r"(?P<value>[-+]?[0-9][0-9.,]*\s*%?)(?:\*\*)?\s*$"
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
    r"^\s*(?P<prefix>eval|test|validation|val)_(?P<name>[a-z0-9_@]+)\s*[=:]\s*"
    r"(?P<value>[-+]?[0-9][0-9.]*%?)\s*$",
    re.I,
)
_KV_LINE = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*)?"
    r"(?P<name>(?:top[- ]?[15]|acc[@ ]?[15])(?:[- ]acc(?:uracy)?)?|(?:top[- ]?[15][- ])?accuracy)"
    r"(?:\*\*)?\s*(?:\(%\))?\s*[:=]\s*(?:\*\*)?(?P<value>\d+(?:\.\d+)?)\s*(?P<pct>%)?(?:\*\*)?"
    r"(?P<rest>.*)$",
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
    r"\bthan\b|\bmore accurate\b|\bless accurate\b|\bimprov|\bhigher\b|\blower\b|\bgain|\bdrop|"
    r"\bcompared\b|\bvs\.?\b|\bbetter\b|\bworse\b|\boutperform|\bincrease|\bdecrease|"
    r"\bdifference\b|\+\s*\d",
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
_RESULTS_HEADING = re.compile(r"eval|result|metric|performance|accuracy|benchmark")

_MODEL_COLUMNS = frozenset(
    {"model", "models", "name", "modelname", "checkpoint", "variant", "arch", "architecture"}
)
_DATASET_COLUMNS = frozenset({"dataset", "data", "evaldataset", "benchmark"})
_SIZE_COLUMNS = frozenset(
    {"imgsize", "imagesize", "resolution", "res", "inputsize", "testsize", "evalsize"}
)
_LOG_COLUMNS = frozenset({"epoch", "step", "trainingloss", "validationloss", "iteration"})


def strip_markup(text: str) -> str:
    """Text of a Markdown fragment: links to their text, emphasis and code marks dropped."""
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(r"\2", text).strip()


@dataclass
class Line:
    number: int
    text: str
    heading: str  # the nearest heading above, lower case


@dataclass
class BodyReading:
    """What a card's body says."""

    title: str | None = None
    figures: list[Figure] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: "This model is a fine-tuned version of [base](...) on the X dataset": (base id, evidence)
    base_model: tuple[str, str] | None = None
    #: ... and X, the data set it was fine-tuned on: (raw name, evidence)
    trained_on: tuple[str, str] | None = None
    #: timm's "- **Dataset:** ImageNet-1k" / "- **Pretrain Dataset:** ..." lines: (raw, stage, evidence)
    dataset_lines: list[tuple[str, Stage, str]] = field(default_factory=list)
    arxiv: list[str] = field(default_factory=list)


def body_lines(body: str) -> list[Line]:
    """The body's lines outside code fences and HTML comments, with their heading."""
    body = _HTML_COMMENT.sub("", body)
    out: list[Line] = []
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
        out.append(Line(number, text, heading))
    return out


def card_title(lines: Sequence[Line]) -> str | None:
    """The first level-1 heading (timm's "Model card for X" gives X)."""
    for line in lines:
        match = _HEADING.match(line.text)
        if match and match.group(1) == "#":
            title = strip_markup(match.group(2))
            title = re.sub(r"^model card for\s+", "", title, flags=re.I).strip()
            return title or None
    return None


def read_body(body: str, *, repo_id: str, names: Iterable[str] = ()) -> BodyReading:
    """Read a card's body. ``names`` are other names of this model (a model-index name)
    that a comparison table's row may use; the repository name and the title always count."""
    return _BodyReader(body, repo_id=repo_id, names=names).read()


class _BodyReader:
    def __init__(self, body: str, *, repo_id: str, names: Iterable[str]) -> None:
        self.body = body
        self.repo_id = repo_id
        self.lines = body_lines(body)
        self.out = BodyReading(title=card_title(self.lines))
        aliases = {repo_id, repo_id.rsplit("/", 1)[-1], *names}
        if self.out.title:
            aliases.add(self.out.title)
        self.aliases = {norm_name(n) for n in aliases if norm_name(n)}
        self.used: set[int] = set()  # lines already read as a figure

    def read(self) -> BodyReading:
        self._fine_tuned_from()
        self._dataset_lines()
        self._trainer_block()
        self._autotrain_block()
        self._log_lines()
        self._tables()
        self._kv_lines()
        self._prose()
        self._arxiv()
        return self.out

    def _figure(
        self,
        metric: Metric,
        parsed: tuple[float, float],
        dataset: str | None,
        split: str,
        evidence: str,
        *,
        img_size: int | None = None,
    ) -> None:
        value, resolution = parsed
        figure = Figure(metric, value, resolution, dataset, split, evidence, img_size=img_size)
        self.out.figures.append(figure)

    # -- what it was made from
    def _fine_tuned_from(self) -> None:
        for line in self.lines:
            match = _FINETUNED.search(line.text)
            if not match:
                continue
            if match.group("url"):
                hub = _HUB_URL.match(match.group("url"))
                base_id = hub.group(1) if hub else match.group("text").strip()
            else:
                base_id = match.group("plain").strip().rstrip(".")
            evidence = f"card: '{clip(match.group(0))}'"
            if base_id and base_id != self.repo_id:
                self.out.base_model = (base_id, evidence)
            ds = match.group("ds")
            if ds:
                ds = strip_markup(ds)
                if not re.fullmatch(r"(?:an?\s+)?(?:unknown|none|custom)", ds, re.I):
                    self.out.trained_on = (ds, evidence)
            return

    def _dataset_lines(self) -> None:
        for line in self.lines:
            match = _TIMM_DATASET.match(line.text)
            if not match:
                continue
            stage = (
                Stage.PRETRAIN if match.group("key").lower().startswith("pretrain") else Stage.TRAIN
            )
            for raw in re.split(r",|;|\band\b|\bthen\b|->", strip_markup(match.group("value"))):
                if raw.strip():
                    self.out.dataset_lines.append(
                        (raw.strip(), stage, f"card: '{clip(line.text)}'")
                    )

    # -- list blocks
    def _list_after(self, start: int) -> Iterator[tuple[Line, str, str]]:
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
                self._list_figure(item, name, value, split=split, what="evaluation-set result")
            self.used.add(line.number)

    def _autotrain_block(self) -> None:
        for i, line in enumerate(self.lines):
            match = _HEADING.match(line.text)
            if match and re.fullmatch(r"validation metrics", match.group(2).strip(), re.I):
                for item, name, value in self._list_after(i):
                    self._list_figure(
                        item, name, value, split="validation", what="AutoTrain validation metric"
                    )

    def _list_figure(self, line: Line, name: str, value: str, *, split: str, what: str) -> None:
        self.used.add(line.number)
        metric = metric_of(name)
        if metric is None:
            return
        parsed = parse_accuracy(value)
        if parsed is None:
            self.out.errors.append(f"card {what} {name!r} = {value!r} is not an accuracy")
            return
        self._figure(metric, parsed, None, split, f"card ({what}): '{clip(line.text)}'")

    def _log_lines(self) -> None:
        for line in self.lines:
            match = _LOG_LINE.match(line.text)
            if not match or line.number in self.used:
                continue
            metric = metric_of(match.group("name"))
            if metric is None:
                continue
            self.used.add(line.number)
            parsed = parse_accuracy(match.group("value"))
            if parsed is None:
                continue
            split = "test" if match.group("prefix").lower() == "test" else "validation"
            self._figure(
                metric, parsed, None, split, f"card (Trainer metrics log): '{clip(line.text)}'"
            )

    # -- single lines and sentences
    def _kv_lines(self) -> None:
        for line in self.lines:
            if line.number in self.used:
                continue
            match = _KV_LINE.match(line.text)
            if not match:
                continue
            name = match.group("name")
            if key(name) == "accuracy" and not _RESULTS_HEADING.search(line.heading):
                continue  # a stray "Accuracy: x" outside any results section
            if "train" in line.heading and "eval" not in line.heading:
                self.out.rejected.append(Rejected(clip(line.text), "a training-set figure"))
                continue
            self.used.add(line.number)
            rest = match.group("rest") or ""
            if _APPROX.search(line.text) or _RELATIVE.search(rest):
                self.out.rejected.append(
                    Rejected(clip(line.text), "approximate or relative figure")
                )
                continue
            parsed = parse_accuracy(match.group("value"), percent=bool(match.group("pct")))
            metric = metric_of(name)
            if parsed is None or metric is None:
                continue
            ds = _DATASET_PHRASE.search(rest)
            dataset = ds.group("ds") if ds else None
            self._figure(metric, parsed, dataset, "validation", f"card: '{clip(line.text)}'")

    def _prose(self) -> None:
        for line in self.lines:
            if line.number in self.used or not line.text.strip():
                continue
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line.text):
                self._prose_sentence(line, sentence)

    def _prose_sentence(self, line: Line, sentence: str) -> None:
        hits = list(_PROSE_METRIC_FIRST.finditer(sentence))
        hits = hits or list(_PROSE_VALUE_FIRST.finditer(sentence))
        if not hits:
            return
        if _TRAIN_FIGURE.search(sentence):
            self.out.rejected.append(Rejected(clip(sentence), "a training-set figure"))
            return
        if _APPROX.search(sentence) or _RELATIVE.search(sentence):
            self.out.rejected.append(Rejected(clip(sentence), "approximate or relative figure"))
            return
        self.used.add(line.number)
        dataset, split = None, "validation"
        for match in _DATASET_PHRASE.finditer(sentence):
            candidate = match.group("ds")
            if match.group("split") or canonical_dataset(candidate):
                dataset = candidate
                if (match.group("split") or "").lower() == "test":
                    split = "test"
                break
        for match in hits:
            metric = metric_of(match.group("name"))
            parsed = parse_accuracy(match.group("value"), percent=True)
            if metric is not None and parsed is not None:
                self._figure(metric, parsed, dataset, split, f"card: '{clip(sentence)}'")

    # -- tables
    def _tables(self) -> None:
        lines, i = self.lines, 0
        while i + 1 < len(lines):
            if not (_is_row(lines[i].text) and _is_separator(lines[i + 1].text)):
                i += 1
                continue
            header = _cells(lines[i].text)
            j = i + 2
            while j < len(lines) and _is_row(lines[j].text):
                j += 1
            context = " ".join(ln.text for ln in lines[max(0, i - 3) : i]) + " " + lines[i].heading
            self._table(header, lines[i + 2 : j], context)
            i = j

    def _table(self, header: list[str], rows: list[Line], context: str) -> None:
        keys = [key(h).replace("%", "") for h in header]
        metric_cols = [(c, m, "%" in h) for c, h in enumerate(header) if (m := metric_of(h))]
        if not metric_cols or not rows:
            return
        self.used.update(row.number for row in rows)
        if any(k in _LOG_COLUMNS for k in keys):
            return  # a per-epoch training log, not a result
        if _NON_CLASSIFICATION.search(context):
            reason = "not a classification result table"
            self.out.rejected.extend(Rejected(clip(r.text), reason) for r in rows)
            return
        model_col = _column(keys, _MODEL_COLUMNS)
        data_col = _column(keys, _DATASET_COLUMNS)
        size_col = _column(keys, _SIZE_COLUMNS)
        for row in rows:
            cells = _cells(row.text)
            if model_col is not None:
                if model_col >= len(cells):
                    continue
                name = strip_markup(cells[model_col])
                links = [_HUB_URL.match(url) for _, url in _LINK.findall(cells[model_col])]
                mine = norm_name(name) in self.aliases or any(
                    m is not None and m.group(1) == self.repo_id for m in links
                )
                if not mine:
                    self.out.rejected.append(
                        Rejected(clip(row.text), f"row of another model ({name})")
                    )
                    continue
            elif len(rows) > 1:
                self.out.rejected.append(Rejected(clip(row.text), "table row without a model name"))
                continue
            dataset = _cell(cells, data_col)
            size = _cell(cells, size_col)
            img_size = int(d.group(0)) if size and (d := re.search(r"\d+", size)) else None
            for col, metric, pct in metric_cols:
                cell = _cell(cells, col)
                parsed = parse_accuracy(cell, percent=pct or _above_one(cell)) if cell else None
                if parsed is None:
                    continue
                evidence = f"card table row: '{clip(row.text)}' (column {header[col].strip()!r})"
                self._figure(
                    metric, parsed, dataset or None, "validation", evidence, img_size=img_size
                )

    # -- papers
    def _arxiv(self) -> None:
        self.out.arxiv = list(dict.fromkeys(m.group(1) for m in _ARXIV.finditer(self.body)))


def _column(keys: Sequence[str], wanted: frozenset[str]) -> int | None:
    return next((c for c, k in enumerate(keys) if k in wanted), None)


def _cell(cells: Sequence[str], col: int | None) -> str | None:
    return strip_markup(cells[col]) if col is not None and col < len(cells) else None


def _is_row(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("|") and stripped.count("|") >= 2


def _is_separator(text: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*", text))


def _cells(text: str) -> list[str]:
    stripped = text.strip().removeprefix("|").removesuffix("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", stripped)]


def _above_one(cell: str) -> bool:
    """A value above 1 in a top-1 column is a percentage (timm's tables)."""
    try:
        return float(cell) > 1
    except ValueError:
        return False
