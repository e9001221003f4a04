"""``Catalogue``: the Python face of the catalogue database.

    >>> cat = Catalogue()                                 # default embedded SQLite
    >>> cat.sync()                                        # offline registries
    >>> cat.search(dataset="CIFAR-10", min_top1=90.0, limit=20)
    >>> cat.get("imgclsmob:resnet20_cifar10").claims
    >>> cat.to_dataframe()
    >>> cat.results(attack="mia", metric="auc")           # evaluation figures (v_results)

The engine is opened (and the schema migrated) on first use, not at construction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from securitynet.catalogue import queries
from securitynet.catalogue.engine import open_engine
from securitynet.catalogue.queries import EntryFilter
from securitynet.errors import InvalidQueryError
from securitynet.records import (
    CatalogueEntry,
    EntryRecord,
    EntrySummary,
    EvaluationRecord,
    ImportSummary,
    ResultRecord,
    SyncSummary,
)
from securitynet.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd

    from securitynet.catalogue.sql import QueryResult
    from securitynet.loader.cache import CacheRecord as VerifiedFile


log = logging.getLogger(__name__)


class Catalogue:
    """The catalogue at ``url`` (default: ``SECURITYNET_DATABASE_URL`` or the embedded SQLite)."""

    def __init__(
        self, url: str | None = None, *, settings: Settings | None = None, upgrade: bool = True
    ) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.resolved_database_url
        #: the default file lives in $SECURITYNET_HOME, made on first use; a folder named
        #: in a URL must exist (a typo must not create a database somewhere unexpected)
        self._default_location = url is None and self.settings.database_url is None
        self._upgrade = upgrade
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"Catalogue({self.url!r})"

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = open_engine(
                self.url, upgrade=self._upgrade, create_folder=self._default_location
            )
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------

    def sync(
        self,
        sources: Sequence[str] | str | None = None,
        *,
        limit: int | None = None,
        options: dict[str, Any] | None = None,
        full: bool = False,
    ) -> list[SyncSummary]:
        """Sync ``sources`` (default: every source that works offline) into the catalogue.

        ``full`` re-reads every source even when its fingerprint (installed package version,
        tables read, our code) says nothing changed since its last complete run."""
        from securitynet.catalogue.ingest import sync_sources

        if isinstance(sources, str):
            sources = [sources]
        summaries = sync_sources(
            self.engine, sources, settings=self.settings, limit=limit, options=options, full=full
        )
        from securitynet.catalogue.curation import apply_curated_annotations

        changed = any(s.added or s.updated or s.removed for s in summaries)
        curated = apply_curated_annotations(self.engine, force=full)  # skipped: nothing changed
        if changed or full:
            from securitynet.catalogue.identity import link_shared_weights

            link_shared_weights(self.engine)
        if changed or full or curated:
            self.refresh_statistics()
        else:  # a statement that wrote nothing may still have marked the counts stale
            self.refresh_facet_counts(only_if_stale=True)
        if changed:
            analyze(self.engine)
        return summaries

    def refresh_statistics(self) -> float:
        """Recompute the stored statistics (``stats``, ``v_accuracy_per_dataset``) and the
        facet counts (the web view's browse) from the entries; every write of this API that
        changed entries does it. Returns the seconds it took."""
        from securitynet.catalogue.stats_table import refresh_statistics

        return refresh_statistics(self.engine) + self.refresh_facet_counts()

    def refresh_facet_counts(self, *, only_if_stale: bool = False) -> float:
        """Rebuild the stored facet counts (:mod:`~securitynet.catalogue.facet_table`);
        ``only_if_stale``: only when a write since the last rebuild made them stale.
        Returns the seconds it took."""
        from securitynet.catalogue import facet_table

        if only_if_stale:
            with self.engine.connect() as conn:
                if facet_table.counts_are_fresh(conn):
                    return 0.0
        return facet_table.refresh_facet_counts(self.engine)

    def import_from(self, importer: str, location: str | None = None) -> ImportSummary:
        """Import a published document: ``securitynet-release`` (the SecurityNet database) or
        ``robustbench`` (its model_info annotations), from ``location`` (a path or URL;
        default: the importer's upstream), then re-apply the curated annotations."""
        from securitynet.catalogue.curation import apply_curated_annotations
        from securitynet.catalogue.imports import import_items
        from securitynet.scrapers import get_importer

        reader = get_importer(importer)
        where = location or reader.default_location(self.settings)
        summary = import_items(
            self.engine,
            reader.iter_items(where, self.settings),
            importer=reader.name,
            entry_source=reader.entry_source,
            location=where,
            complete=reader.complete(where),
        )
        apply_curated_annotations(self.engine)
        self.refresh_statistics()
        return summary

    def add(self, records: Sequence[EntryRecord], *, origin: str) -> SyncSummary:
        """Store ``records`` (one repository a user added, say) without a full sync of their
        source: nothing else is marked removed. Curated annotations are applied after."""
        import time

        from securitynet.catalogue.curation import apply_curated_annotations
        from securitynet.catalogue.ingest import seed_datasets, write_records

        started = time.perf_counter()
        summary = SyncSummary(source=origin, seen=len(records))
        with Session(self.engine) as session, session.begin():
            seed_datasets(session)
            counts = write_records(session, list(records), origin=origin)
        for key, value in counts.items():
            setattr(summary, key, value)
        curated = apply_curated_annotations(self.engine)
        if summary.added or summary.updated or curated:
            self.refresh_statistics()
        else:
            self.refresh_facet_counts(only_if_stale=True)
        summary.seconds = time.perf_counter() - started
        return summary

    def add_evaluation(self, entry_id: str, record: EvaluationRecord) -> int:
        """Store one evaluation of ``entry_id`` with its metric rows; return its id.

        The evaluated data set gets its ``dataset`` row if it has none; an entry that is not
        catalogued raises EntryNotFoundError."""
        from securitynet.catalogue.results import add_evaluations

        with self.session() as s, s.begin():
            return add_evaluations(s, [(entry_id, record)])[0]

    def record_verified_files(self, entry_id: str, files: Sequence[VerifiedFile]) -> int:
        """Pin the files of ``entry_id`` that a verified download just hashed: their full
        sha256 and size go into the entry's ``weight_file`` rows that have none yet. Hub
        files are left to the hf source's pins (commit and LFS sha256): read at a moving
        ``main``, their bytes may still change. Returns how many rows were pinned."""
        from sqlalchemy import update

        from securitynet.catalogue.models import WeightFile

        pinned = 0
        with self.session() as s, s.begin():
            for f in files:
                if not f.url or f.url.startswith("hf://"):
                    continue  # the Hub's pins (commit and LFS sha256) are the hf source's
                result = s.execute(
                    update(WeightFile)
                    .where(
                        WeightFile.entry_id == entry_id,
                        WeightFile.url == f.url,
                        WeightFile.sha256.is_(None),
                    )
                    .values(sha256=f.sha256, size=f.size),
                    execution_options={"synchronize_session": False},
                )
                pinned += int(getattr(result, "rowcount", 0) or 0)
        return pinned

    # --- reading ----------------------------------------------------------------------------

    def get(self, entry_id: str) -> CatalogueEntry:
        """The entry ``entry_id`` with every claim, data set, file and fact; or EntryNotFoundError."""
        with self.session() as s:
            return queries.get_entry(s, entry_id)

    def find(self, entry_id: str) -> CatalogueEntry | None:
        with self.session() as s:
            return queries.find_entry(s, entry_id)

    def fill_pending(self, entry_id: str) -> bool:
        """Read what the sync of ``entry_id`` left pending (the hf source's config.json and
        weight-file pins; ``raw["pending"]``) and write it back. Returns whether anything was
        written. Offline, or when the source cannot be reached, nothing is read: the entry
        stays pending (logged), and the caller goes on with what the catalogue holds."""
        from securitynet.catalogue.fill import apply_fill, pending_of

        entry = self.get(entry_id)
        if not pending_of(entry.raw) or self.settings.offline:
            return False
        from securitynet.errors import SecurityNetError
        from securitynet.scrapers import get_scraper

        try:
            fill = getattr(get_scraper(entry.source), "fill_pending", None)
            if fill is None:
                return False
            result = fill(entry, self.settings)
        except SecurityNetError as exc:
            log.warning("%s: what the sync left pending was not read (%s)", entry_id, exc)
            return False
        with self.session() as s:
            apply_fill(s, result, origin=entry.source)
            s.commit()
        return True

    def search(
        self,
        *,
        sort: str | None = "top1",
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
        **filters: Any,
    ) -> list[EntrySummary]:
        """Entries matching every filter (``source``, ``dataset``, ``family``, ``architecture``,
        ``licence``, ``task``, ``pretrain`` (a data set anywhere in the pre-training chain),
        ``num_classes``, ``min_params``, ``max_params``, ``min_top1``, ``max_top1``,
        ``min_input_size``, ``max_input_size``, ``text``, ``include_removed``,
        ``include_shared_weights``, ``include_test_nets``), best top-1 first by default. Each weight file is listed once
        (entries that share another's weights are left out) and test nets are left out,
        unless asked for."""
        flt = make_filter(**filters)
        with self.session() as s:
            return queries.search(
                s, flt, sort=sort, descending=descending, limit=limit, offset=offset
            )

    def count(self, **filters: Any) -> int:
        with self.session() as s:
            return queries.count(s, make_filter(**filters))

    def to_dataframe(
        self, *, columns: Sequence[str] | None = None, ordered: bool = True, **filters: Any
    ) -> pd.DataFrame:
        """One row per entry (matching ``filters``), in id order (any order when not
        ``ordered``: faster), columns named as the entry's fields (those of a listing;
        ``columns`` picks some: reading two of sixteen columns of a million entries is several
        times faster). Counts are nullable ``Int64``."""
        import pandas as pd

        flt = make_filter(**filters)
        wanted = list(columns) if columns is not None else list(queries.SUMMARY_COLUMNS)
        unknown = [c for c in wanted if c not in queries.SUMMARY_COLUMNS]
        if unknown:
            raise InvalidQueryError(
                f"unknown column(s): {', '.join(unknown)}",
                hint=f"Columns: {', '.join(queries.SUMMARY_COLUMNS)}.",
            )
        stmt = queries.search_statement(
            flt, sort="id" if ordered else None, descending=False, columns=wanted
        )
        with self.engine.connect() as conn:
            # the driver's own tuples: every listing column is a string, a number or a flag,
            # which need no conversion, and SQLAlchemy's row objects cost more than the query
            rows = conn.execute(stmt).cursor.fetchall()
        frame = pd.DataFrame.from_records(rows, columns=wanted, coerce_float=False)
        ints = {"params", "num_classes", "input_size", "top1_best_size"}
        floats = {"top1", "top1_best", "gflops"}
        flags = {"test_net", "removed_upstream"}
        return frame.astype(
            {c: "Int64" for c in wanted if c in ints}
            | {c: "float64" for c in wanted if c in floats}
            | {c: "bool" for c in wanted if c in flags}
        )

    def results(self, *, limit: int | None = None, **filters: Any) -> list[ResultRecord]:
        """Evaluation figures, one per metric (the ``v_results`` view), matching every filter
        (``entry_id``, ``attack``, ``variant``, ``metric``, ``dataset``, ``source``,
        ``status`` (default ``'ok'``; None for all), ``include_removed``)."""
        from securitynet.catalogue.results import list_results, result_filter

        flt = result_filter(**filters)
        with self.session() as s:
            return list_results(s, flt, limit=limit)

    def find_evaluation(
        self, entry_id: str, *, attack: str, config_digest: str
    ) -> EvaluationRecord | None:
        """The newest successful evaluation of ``entry_id`` by ``attack`` with this
        configuration digest, or None (what the harness reuses unless forced)."""
        from securitynet.catalogue.results import find_evaluation

        with self.session() as s:
            return find_evaluation(s, entry_id, attack=attack, config_digest=config_digest)

    def overview(self) -> list[dict[str, Any]]:
        """Entries per source, as ``sync`` prints them. Our own fixed query, read directly:
        the read-only guard is for a user's SQL (on PostgreSQL it refuses a superuser)."""
        from sqlalchemy import text

        from securitynet.catalogue.stats import OVERVIEW_QUERY

        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(text(OVERVIEW_QUERY)).mappings()]

    def sql(self, statement: str, *, max_rows: int | None = None, timeout: float | None = None) -> QueryResult:
        """Run one read-only SQL statement (refused if it would write), capped at ``max_rows``
        rows and ``timeout`` seconds (default: the ``sql_max_rows`` / ``sql_timeout`` settings)."""
        from securitynet.catalogue.sql import run_sql

        return run_sql(
            self.engine,
            statement,
            max_rows=self.settings.sql_max_rows if max_rows is None else max_rows,
            timeout=self.settings.sql_timeout if timeout is None else timeout,
            reader_url=self.settings.sql_database_url,
        )


def make_filter(**filters: Any) -> EntryFilter:
    unknown = sorted(set(filters) - set(EntryFilter.names()))
    if unknown:
        raise InvalidQueryError(
            f"unknown filter(s): {', '.join(unknown)}",
            hint=f"Filters: {', '.join(EntryFilter.names())}.",
            value=unknown,
        )
    return EntryFilter(**filters)


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics after a sync that changed rows: without them SQLite
    picks the wrong index for the accuracy look-ups (PRAGMA optimize may do nothing on a
    fresh connection of SQLite 3.40). Bounded on SQLite by ``analysis_limit``."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")
