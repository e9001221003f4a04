"""Model cards (a Hub repository's README.md) -> accuracy claims, training chain, licence.

A card is YAML front matter (``license``, ``datasets``, ``base_model``, ``model-index``)
followed by a Markdown body (read by :mod:`securitynet.annotate.card_body`).

``model-index`` is read with huggingface_hub's own parser
(:func:`~huggingface_hub.repocard_data.model_index_to_eval_results`) and, where the library
refuses it (14 of the 31 in the real sample: a result without a ``dataset:`` block, the
legacy ``model_index`` key, ``metric:`` instead of ``metrics:``), by walking the raw YAML.
A figure stated twice (the model-index's 0.98731 and the body's rounded 0.9873) is one
claim. A claim that names no data set is on the card's final training set. Every claim,
data set and base model carries its evidence: the model-index path, or the card's line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from securitynet.annotate.card_body import BodyReading, read_body
from securitynet.annotate.datasets import canonical_dataset, dataset_name
from securitynet.annotate.figures import (
    Figure,
    Rejected,
    metric_of,
    norm_name,
    parse_accuracy,
)
from securitynet.records import AccuracyClaim, ClaimKind, DatasetLink, Stage

#: Dataset name used for a claim when neither the claim nor the card names one.
UNKNOWN_DATASET = "unknown"

#: Data sets that are (almost) only ever pre-training data: when a card's ``datasets:``
#: lists one of these beside another, this one is the pre-training step.
PRETRAINING_SCALE = frozenset(
    {"ImageNet-21k", "ImageNet-21K-P", "ImageNet-21k-Winter21", "ImageNet-12k", "JFT-300M", "JFT-3B",
     "LAION-2B", "LAION-400M", "DataComp-1B", "DFN-2B", "DFN-5B", "WebLI", "OpenAI-WIT", "Instagram-1B", "Instagram-3.5B", "YFCC100M", "Merged-38M", "Merged-30M"}
)  # fmt: skip

__all__ = [
    "PRETRAINING_SCALE",
    "UNKNOWN_DATASET",
    "BaseModel",
    "CardAnnotation",
    "Rejected",
    "card_body_signalled",
    "card_needs_body",
    "load_front_matter",
    "parse_card",
    "read_model_index",
]


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


# --- front matter ------------------------------------------------------------------------------

#: libyaml's safe loader when PyYAML was built with it (ten times faster), else PyYAML's.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FRONT_MATTER = re.compile(
    r"\A\ufeff?[ \t\r\n]*---[ \t]*\r?\n(?P<yaml>.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M
)


def load_front_matter(text: str) -> tuple[dict[str, Any], str, str | None]:
    """(metadata, body, error). Malformed YAML gives empty metadata and an error message."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text, None
    body = text[match.end() :]
    try:
        data = yaml.load(match.group("yaml"), Loader=_YAML_LOADER)  # a safe loader, C or Python
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


# --- model-index --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexResult:
    """One metric of one model-index result, as read."""

    dataset_name: str | None
    dataset_type: str | None
    split: str | None
    metric_type: str | None
    metric_name: str | None
    value: Any
    verified: bool
    path: str


def _library_results(model_index: Any) -> list[IndexResult]:
    """Read ``model-index`` with huggingface_hub; raises what the library raises."""
    from huggingface_hub.repocard_data import model_index_to_eval_results

    _, results = model_index_to_eval_results(model_index)
    return [
        IndexResult(
            dataset_name=r.dataset_name,
            dataset_type=r.dataset_type,
            split=r.dataset_split,
            metric_type=r.metric_type,
            metric_name=r.metric_name,
            value=r.metric_value,
            verified=bool(r.verified),
            path=f"model-index result {i}",
        )
        for i, r in enumerate(results)
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if isinstance(value, Mapping) else []


def _text(value: Any) -> str | None:
    return (str(value).strip() or None) if value is not None else None


def _raw_results(model_index: Any) -> Iterator[IndexResult]:
    """Walk a model-index as plain YAML, tolerating what the library refuses."""
    for m, model in enumerate(_as_list(model_index)):
        if not isinstance(model, Mapping):
            continue
        for r, result in enumerate(_as_list(model.get("results"))):
            if not isinstance(result, Mapping):
                continue
            ds = result.get("dataset")
            dataset: Mapping[str, Any] = ds if isinstance(ds, Mapping) else {}
            for k, metric in enumerate(_as_list(result.get("metrics", result.get("metric")))):
                if not isinstance(metric, Mapping):
                    continue
                yield IndexResult(
                    dataset_name=_text(dataset.get("name")),
                    dataset_type=_text(dataset.get("type")),
                    split=_text(dataset.get("split")),
                    metric_type=_text(metric.get("type")),
                    metric_name=_text(metric.get("name")),
                    value=metric.get("value"),
                    verified=bool(metric.get("verified")),
                    path=f"model-index[{m}].results[{r}].metrics[{k}]",
                )


def read_model_index(metadata: Mapping[str, Any]) -> tuple[list[IndexResult], str, list[str]]:
    """(results, how they were read, errors) for the card's ``model-index``."""
    key = next((k for k in ("model-index", "model_index") if k in metadata), None)
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


def _index_figures(metadata: Mapping[str, Any]) -> tuple[list[Figure], list[str]]:
    results, how, errors = read_model_index(metadata)
    figures = []
    for r in results:
        metric = metric_of(r.metric_type) or metric_of(r.metric_name)
        if metric is None:
            continue
        label = r.metric_name or r.metric_type or "?"
        parsed = parse_accuracy(r.value)
        if parsed is None:
            errors.append(f"{r.path}: {label} value {r.value!r} is not a number")
            continue
        evidence = f"card {r.path}: {label} = {r.value!r}" + (f" ({how})" if how else "")
        if r.verified:
            evidence += "; verified: true (evaluated by the Hub)"
        figures.append(
            Figure(
                metric=metric,
                value=parsed[0],
                resolution=parsed[1],
                dataset_raw=r.dataset_name or r.dataset_type,
                split=r.split or "validation",
                evidence=evidence,
                kind=ClaimKind.MEASURED if r.verified else ClaimKind.CLAIMED,
            )
        )
    return figures, errors


# --- the card ------------------------------------------------------------------------------------


def _licence(metadata: Mapping[str, Any]) -> str | None:
    lic = metadata.get("license")
    if isinstance(lic, list):
        lic = lic[0] if lic else None
    if not isinstance(lic, str) or not lic.strip():
        return None
    if lic.strip() == "other" and isinstance(metadata.get("license_name"), str):
        return str(metadata["license_name"]).strip()
    return lic.strip()


def _base_models(metadata: Mapping[str, Any], body: BodyReading, repo_id: str) -> list[BaseModel]:
    base = metadata.get("base_model")
    named = [base] if isinstance(base, str) else base if isinstance(base, list) else []
    out = [
        BaseModel(b.strip(), "card metadata: base_model")
        for b in named
        if isinstance(b, str) and b.strip()
    ]
    if body.base_model and all(b.id != body.base_model[0] for b in out):
        out.append(BaseModel(*body.base_model))
    return [b for b in out if b.id != repo_id]


def _datasets_in_name(name: str) -> list[str]:
    """Data-set tokens in a model name: ``...-in21k`` -> ``in21k``, BEiT's ``pt22k`` -> ``in22k``."""
    out = []
    for token in re.split(r"[-_./]", name.lower()):
        token = re.sub(r"^(?:pt|ft)(?=\d+k$)", "in", token)
        if re.fullmatch(r"in(?:1|12|21|22)k", token) and canonical_dataset(token):
            out.append(token)
    return out


def _training_chain(
    metadata: Mapping[str, Any], body: BodyReading, bases: list[BaseModel], source: str
) -> list[DatasetLink]:
    """Pre-training steps (from the base model's name, timm's "Pretrain Dataset" line, a
    pre-training-scale set in ``datasets:``), then the fine-tuning set: the Trainer's sentence,
    else timm's "Dataset" line, else the card's ``datasets:``."""
    links: list[DatasetLink] = []

    def add(raw: str, stage: Stage, evidence: str) -> None:
        name = dataset_name(raw)
        if stage is Stage.TRAIN:  # the last word on a set is that it was trained on
            links[:] = [d for d in links if d.dataset != name]
        if name and all(d.dataset != name for d in links):
            raw_name = raw if raw != name else None
            links.append(
                DatasetLink(
                    dataset=name, raw_name=raw_name, stage=stage, source=source, evidence=evidence
                )
            )

    for base in bases:
        for raw in _datasets_in_name(base.id):
            add(raw, Stage.PRETRAIN, f"base model {base.id} (name)")
    for raw, stage, evidence in body.dataset_lines:
        if stage is Stage.PRETRAIN:
            add(raw, stage, evidence)
    trained = [body.trained_on] if body.trained_on else []
    trained = trained or [
        (raw, ev) for raw, stage, ev in body.dataset_lines if stage is Stage.TRAIN
    ]
    if not trained:
        listed = metadata.get("datasets")
        listed = [listed] if isinstance(listed, str) else listed if isinstance(listed, list) else []
        names = [str(d).strip() for d in listed if isinstance(d, (str, int)) and str(d).strip()]
        big = [n for n in names if dataset_name(n) in PRETRAINING_SCALE]
        if big and len(big) < len(names):
            for raw in big:
                add(raw, Stage.PRETRAIN, "card metadata: datasets")
            names = [n for n in names if n not in big]
        trained = [(n, "card metadata: datasets") for n in names]
    for raw, evidence in trained:
        add(raw, Stage.TRAIN, evidence)
    return links


def _claim_dataset(raw: str | None, datasets: list[DatasetLink]) -> str:
    """A claim's data set: as stated, else the card's final training set, else unknown.

    A stated name that is the training set spelt differently (``image_folder`` beside the
    Trainer sentence's ``imagefolder``) is the training set, so the claim and the chain agree.
    """
    trained = [d for d in datasets if d.stage is Stage.TRAIN]
    final = trained[-1] if trained else None
    if not raw:
        return final.dataset if final else UNKNOWN_DATASET
    spellings = {norm_name(final.dataset), norm_name(final.raw_name or "")} if final else set()
    if final and canonical_dataset(raw) is None and norm_name(raw) in spellings:
        return final.dataset
    return dataset_name(raw)


def _settle(
    figures: list[Figure], datasets: list[DatasetLink], *, source: str, url: str | None
) -> list[AccuracyClaim]:
    kept: list[tuple[Figure, AccuracyClaim]] = []
    for fig in figures:
        dataset = _claim_dataset(fig.dataset_raw, datasets)
        if any(_same_claim(k, c, fig, dataset) for k, c in kept):
            continue
        claim = AccuracyClaim(
            dataset=dataset,
            split=fig.split,
            metric=fig.metric,
            value=fig.value,
            img_size=fig.img_size,
            kind=fig.kind,
            source=source,
            evidence=fig.evidence,
            url=url,
        )
        kept.append((fig, claim))
    return [c for _, c in kept]


def _same_claim(kept: Figure, claim: AccuracyClaim, new: Figure, dataset: str) -> bool:
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


def _looks_like_html_page(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


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
    body_text = ""
    if text is not None:
        if _looks_like_html_page(text):
            errors.append("README.md is an HTML page, not a model card")
        else:
            parsed, body_text, error = load_front_matter(text)
            errors += [error] if error else []
            meta = parsed or meta
    index_names = [
        str(m["name"])
        for m in _as_list(meta.get("model-index") or meta.get("model_index"))
        if isinstance(m, Mapping) and m.get("name")
    ]
    body = read_body(body_text, repo_id=repo_id, names=index_names)
    index_figures, index_errors = _index_figures(meta)
    bases = _base_models(meta, body, repo_id)
    datasets = _training_chain(meta, body, bases, source)
    out = CardAnnotation(
        metadata=meta,
        title=body.title,
        claims=_settle(index_figures + body.figures, datasets, source=source, url=url),
        datasets=datasets,
        base_models=bases,
        licence=_licence(meta),
        arxiv=body.arxiv,
        errors=errors + index_errors + body.errors,
        rejected=body.rejected,
    )
    if out.licence:
        out.evidence["licence"] = "card metadata: license"
    return out


def card_needs_body(annotation: CardAnnotation, tags: Iterable[str] = ()) -> bool:
    """Whether a card read from metadata alone may be missing what only its body says.

    The body is worth a request when the metadata gives no accuracy claim, or when the
    card was written by the Trainer and the metadata does not name the base model (the
    Trainer names it in a sentence of the body).
    """
    if not annotation.claims:
        return True
    return "generated_from_trainer" in set(tags) and not annotation.base_models


#: Tags of cards whose body is written by a tool that states results in a fixed form.
TOOL_TAGS = ("generated_from_trainer", "autotrain")


def card_body_signalled(annotation: CardAnnotation, tags: Iterable[str] = ()) -> bool:
    """Whether the listing shows that the body of a card holds what its metadata lacks: a
    card written by the Trainer or AutoTrain (they state results and the base model in a
    fixed form), with no accuracy claim or, for the Trainer, no base model in its metadata.
    Narrower than :func:`card_needs_body`: a hand-written card's table or sentence is missed."""
    tagset = set(tags)
    if not tagset.intersection(TOOL_TAGS):
        return False
    if not annotation.claims:
        return True
    return "generated_from_trainer" in tagset and not annotation.base_models
