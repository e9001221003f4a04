"""The catalogue's tables (SQLAlchemy 2 typed ORM).

One row of ``entry`` per catalogued checkpoint. Everything said about it sits in child
tables whose rows carry provenance (``source``: who said it; ``evidence``: where; when),
and ``origin``: which writer (a scraper, ``curated``, ``evaluate``) put the row there, so a
re-sync of one source replaces only its own rows. ``entry.dataset`` and ``entry.top1`` are
the merged view (final training data set, best top-1 claim on it), denormalised and
indexed because nearly every query filters or sorts on them. The curated / release
annotations users filter on (``purpose``, ``venue``, ``year``, ``data_category``,
``train_size``, ``country``) are indexed entry columns too, with a ``fact`` row per source.

An ``evaluation`` is one attack run (or one published figure set) on one entry; its
figures are ``evaluation_metric`` rows, one per metric, so that SQL can filter and
aggregate them (view ``v_results``).
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false
from sqlalchemy.types import TypeDecorator

from securitynet.records import ClaimKind, Metric, Purpose, Stage

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the offset; SQLite stores text without one, so values are normalised to
    UTC on the way in and tagged UTC on the way out: both databases give the same answer.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _str_enum(enum_cls: type[enum.Enum], length: int = 16) -> Enum:
    """Store an enum as its string value (no native enum type, no CHECK constraint)."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


#: What a browse page reads besides its data set and top-1: the visibility flags, the
#: other facets and the parameter count.
_BROWSE_TAIL = (
    "removed_upstream", "test_net", "same_weights_as", "family", "source", "licence", "params",
    "task", "input_size", "pretrain",
)  # fmt: skip


class Entry(Base):
    __tablename__ = "entry"

    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(480), index=True)
    task: Mapped[str] = mapped_column(String(64), default="image-classification", index=True)
    architecture: Mapped[str | None] = mapped_column(String(255), index=True)
    family: Mapped[str | None] = mapped_column(String(128), index=True)
    num_classes: Mapped[int | None] = mapped_column(Integer, index=True)
    input_size: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[int | None] = mapped_column(BigInteger, index=True)
    gflops: Mapped[float | None] = mapped_column(Float, index=True)
    licence: Mapped[str | None] = mapped_column(String(128), index=True)
    paper: Mapped[str | None] = mapped_column(String(512))
    library: Mapped[str | None] = mapped_column(String(64))
    upstream_url: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(128))
    upstream_modified: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # merged view, denormalised for fast faceted queries
    dataset: Mapped[str | None] = mapped_column(String(128), index=True)
    #: best top-1 on ``dataset`` at the input size the loader uses (``input_size``), or stated
    #: without a size; ``top1_best`` is the best at any size, measured at ``top1_best_size``
    top1: Mapped[float | None] = mapped_column(Float, index=True)
    # curated / release annotations users filter on
    purpose: Mapped[Purpose | None] = mapped_column(_str_enum(Purpose), index=True)
    venue: Mapped[str | None] = mapped_column(String(128), index=True)
    venue_type: Mapped[str | None] = mapped_column(String(32), index=True)
    year: Mapped[int | None] = mapped_column(Integer, index=True)
    data_category: Mapped[str | None] = mapped_column(String(32), index=True)
    train_size: Mapped[int | None] = mapped_column(BigInteger, index=True)
    country: Mapped[str | None] = mapped_column(String(255), index=True)
    # how a bare checkpoint's architecture was found (resolved | ambiguous | unresolved | declared)
    arch_resolution: Mapped[str | None] = mapped_column(String(16), index=True)
    top1_size: Mapped[int | None] = mapped_column(Integer)
    top1_best: Mapped[float | None] = mapped_column(Float)
    top1_best_size: Mapped[int | None] = mapped_column(Integer)
    #: the entry whose weight file this one shares (same URL or sha256); NULL for the first
    #: of such a group and for every entry with weights of its own
    same_weights_as: Mapped[str | None] = mapped_column(String(512), index=True)
    #: the pre-training data sets of its training chain as one key (each name written
    #: ``<length>:<name>``, in name order, concatenated; NULL: none), kept by triggers on
    #: ``entry_dataset`` (migration 0008), so a browse counts them from the entry row
    pretrain: Mapped[str | None] = mapped_column(Text)
    #: a net a library registers for its own tests (timm's ``test_*``), not a model
    test_net: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), index=True
    )
    label_set_digest: Mapped[str | None] = mapped_column(
        ForeignKey("label_set.digest"), index=True
    )
    label_set: Mapped[LabelSet | None] = relationship()
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    load_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    removed_upstream: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    files: Mapped[list[WeightFile]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="WeightFile.id",
    )
    datasets: Mapped[list[EntryDataset]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="EntryDataset.position",
    )
    claims: Mapped[list[AccuracyClaimRow]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AccuracyClaimRow.id",
    )
    facts: Mapped[list[Fact]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Fact.id",
    )
    errors: Mapped[list[AnnotationError]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AnnotationError.id",
    )
    evaluations: Mapped[list[Evaluation]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Evaluation.id",
    )

    __table_args__ = (
        Index("ix_entry_dataset_top1", "dataset", "top1"),
        Index("ix_entry_source_removed", "source", "removed_upstream"),
        # covering indexes of the web view's browse (migration 0006; task and input size
        # since 0008): a page, its total and its facet counts read from the index alone
        Index("ix_entry_browse_dataset", "dataset", "top1", *_BROWSE_TAIL),
        Index("ix_entry_browse_top1", "top1", "dataset", *_BROWSE_TAIL),
        Index("ix_entry_browse_params", "params", "dataset", *_BROWSE_TAIL[:-4], "task", "input_size", "pretrain", "top1"),
    )

    def __repr__(self) -> str:
        return f"Entry({self.id!r})"


class Dataset(Base):
    """A data set named anywhere in the catalogue; ``canonical`` when it is in our taxonomy."""

    __tablename__ = "dataset"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    canonical: Mapped[bool] = mapped_column(Boolean, default=False)
    num_classes: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str | None] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(Text)
    aliases: Mapped[list[Any]] = mapped_column(JSON, default=list)


class LabelSet(Base):
    """A list of class names, stored once however many entries use it (keyed by the sha256 of
    its JSON text); an entry's ``load_spec.labels`` is read back from here."""

    __tablename__ = "label_set"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[Any]] = mapped_column(JSON)


class _ChildMixin:
    """Provenance columns shared by every row that states something about an entry."""

    source: Mapped[str] = mapped_column(String(96), index=True)
    evidence: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(32), index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WeightFile(_ChildMixin, Base):
    __tablename__ = "weight_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entry.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(512))
    revision: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    checksum: Mapped[str | None] = mapped_column(String(128))
    checksum_algo: Mapped[str | None] = mapped_column(String(32))
    format: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32), default="weights")

    entry: Mapped[Entry] = relationship(back_populates="files")


class EntryDataset(_ChildMixin, Base):
    """One step of an entry's training chain, in order (``position``)."""

    __tablename__ = "entry_dataset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entry.id", ondelete="CASCADE"), index=True)
    dataset: Mapped[str] = mapped_column(ForeignKey("dataset.name"), index=True)
    raw_name: Mapped[str | None] = mapped_column(String(255))
    stage: Mapped[Stage] = mapped_column(_str_enum(Stage))
    position: Mapped[int] = mapped_column(Integer, default=0)

    entry: Mapped[Entry] = relationship(back_populates="datasets")


class AccuracyClaimRow(_ChildMixin, Base):
    __tablename__ = "accuracy_claim"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entry.id", ondelete="CASCADE"), index=True)
    dataset: Mapped[str] = mapped_column(ForeignKey("dataset.name"), index=True)
    split: Mapped[str] = mapped_column(String(32))
    metric: Mapped[Metric] = mapped_column(_str_enum(Metric))
    value: Mapped[float] = mapped_column(Float)
    img_size: Mapped[int | None] = mapped_column(Integer)
    crop_pct: Mapped[float | None] = mapped_column(Float)
    kind: Mapped[ClaimKind] = mapped_column(_str_enum(ClaimKind))
    url: Mapped[str | None] = mapped_column(Text)

    entry: Mapped[Entry] = relationship(back_populates="claims")

    __table_args__ = (
        Index("ix_accuracy_claim_dataset_metric_value", "dataset", "metric", "value"),
    )


class Fact(_ChildMixin, Base):
    """A scalar fact (params, licence, ...) as one source stated it. The entry's column holds
    the merged value; these rows keep every source's word, disagreeing ones included."""

    __tablename__ = "fact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entry.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[Any] = mapped_column(JSON)

    entry: Mapped[Entry] = relationship(back_populates="facts")


class AnnotationError(_ChildMixin, Base):
    """Something about an entry that could not be annotated (a malformed card, say)."""

    __tablename__ = "annotation_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entry.id", ondelete="CASCADE"), index=True)
    message: Mapped[str] = mapped_column(Text)

    entry: Mapped[Entry] = relationship(back_populates="errors")


class SyncRun(Base):
    __tablename__ = "sync_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    seen: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="Source-specific resume/incremental state (a cursor, a last-modified mark)."
    )
    version: Mapped[str | None] = mapped_column(String(32))


class AccuracyStatistics(Base):
    """Entries and the spread of top-1 per group, stored: one row per value of each grouping
    (``dataset``, ``source``, ``family``, ``licence``, ``architecture``; ``value`` NULL is the
    group of entries without one), over the entries counted by default (live, each checkpoint
    once, no test nets). Refreshed after every write that changed entries
    (:mod:`securitynet.catalogue.stats_table`); read by ``stats`` and by the view
    ``v_accuracy_per_dataset``, so neither sorts a million rows per question."""

    __tablename__ = "accuracy_statistics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grouping: Mapped[str] = mapped_column(String(16), index=True)
    value: Mapped[str | None] = mapped_column(String(255))
    entries: Mapped[int] = mapped_column(Integer)
    with_top1: Mapped[int] = mapped_column(Integer)
    top1_min: Mapped[float | None] = mapped_column(Float)
    top1_q1: Mapped[float | None] = mapped_column(Float)
    top1_median: Mapped[float | None] = mapped_column(Float)
    top1_q3: Mapped[float | None] = mapped_column(Float)
    top1_max: Mapped[float | None] = mapped_column(Float)
    top1_mean: Mapped[float | None] = mapped_column(Float)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FacetCount(Base):
    """How many entries share one combination of the browse facets, stored: one row per
    combination of data set, family, source, licence, task, input size, pre-training data
    sets and the visibility flags that occurs. Refreshed after every write that changed
    entries (:mod:`securitynet.catalogue.facet_table`); any facet count under facet filters
    alone is a ``GROUP BY`` over these few rows instead of over every entry.

    ``pretrain`` is the entry's set of pre-training data sets as a key (each name as
    ``<length>:<name>``, concatenated), which :class:`FacetPretrain` spells out."""

    __tablename__ = "facet_count"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str | None] = mapped_column(String(128))
    family: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(32))
    licence: Mapped[str | None] = mapped_column(String(128))
    task: Mapped[str | None] = mapped_column(String(64))
    input_size: Mapped[int | None] = mapped_column(Integer)
    pretrain: Mapped[str | None] = mapped_column(Text)
    removed_upstream: Mapped[bool] = mapped_column(Boolean)
    shared_weights: Mapped[bool] = mapped_column(Boolean)
    test_net: Mapped[bool] = mapped_column(Boolean)
    entries: Mapped[int] = mapped_column(Integer)


class FacetPretrain(Base):
    """The pre-training data sets of each ``facet_count.pretrain`` key, one row per name."""

    __tablename__ = "facet_pretrain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pretrain: Mapped[str] = mapped_column(Text, index=True)
    dataset: Mapped[str] = mapped_column(String(128), index=True)


class SummaryState(Base):
    """Which stored summaries are fresh: a row per summary refreshed since the last write
    to ``entry`` or ``entry_dataset``. Triggers (migration 0008) delete every row on such a
    write, whoever makes it (a sync, an import, a hand-written SQL update), so a reader
    never takes stale counts for current ones."""

    __tablename__ = "summary_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Evaluation(Base):
    """One attack or defence run on one entry, or one set of figures a source published.

    ``source`` says who produced the figures (``evaluate`` for our harness, a publication
    such as ``securitynet-release``); ``config_digest`` identifies the configuration (attack
    config, protocol, weights, library versions) so an identical run can be reused. The
    figures are :class:`EvaluationMetric` rows.
    """

    __tablename__ = "evaluation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("entry.id", ondelete="CASCADE"), index=True)
    attack: Mapped[str] = mapped_column(String(64), index=True)
    variant: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(
        String(96), index=True, default="evaluate", server_default="evaluate"
    )
    dataset: Mapped[str | None] = mapped_column(ForeignKey("dataset.name"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    protocol: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int | None] = mapped_column(Integer)
    config_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    device: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="ok", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="evaluations")
    metrics: Mapped[list[EvaluationMetric]] = relationship(
        back_populates="evaluation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="EvaluationMetric.id",
    )

    __table_args__ = (Index("ix_evaluation_entry_id_attack", "entry_id", "attack"),)


class EvaluationMetric(Base):
    """One figure of one evaluation: accuracy in percent, AUC, agreement, TPR as fractions."""

    __tablename__ = "evaluation_metric"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[int] = mapped_column(
        ForeignKey("evaluation.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[float] = mapped_column(Float)
    lower: Mapped[float | None] = mapped_column(Float)
    upper: Mapped[float | None] = mapped_column(Float)

    evaluation: Mapped[Evaluation] = relationship(back_populates="metrics")

    __table_args__ = (
        UniqueConstraint("evaluation_id", "metric", name="uq_evaluation_metric_evaluation_id_metric"),
        Index("ix_evaluation_metric_metric_value", "metric", "value"),
    )
