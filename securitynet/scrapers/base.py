"""The scraper plug-in protocol.

A scraper reads one upstream source and yields :class:`EntryRecord` values (or
:class:`Unchanged` markers for entries it knows did not change). It never touches the
database: what it needs to know about the catalogue comes in a :class:`SyncContext`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from securitynet.records import Attachment, EntryRecord
from securitynet.settings import Settings


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The entry ``id`` is still upstream and did not change since the catalogue stored it."""

    id: str


@dataclass
class SyncContext:
    """What a scraper may know about the sync it runs in."""

    settings: Settings
    #: id -> revision (or upstream content marker) of every live entry of this source.
    known: Mapping[str, str | None] = field(default_factory=dict)
    #: Stop after this many records (a partial crawl: nothing is marked removed).
    limit: int | None = None
    #: Source-specific state saved by the last run (cursor, last-modified mark); the
    #: scraper may update it in place, and the sync persists it with every batch.
    state: dict[str, Any] = field(default_factory=dict)
    #: Per-source options from the CLI or API (e.g. ``timm_results``: a folder).
    options: dict[str, Any] = field(default_factory=dict)
    #: Re-read everything: no fingerprint skip, no "unchanged since revision X" shortcut.
    full: bool = False


@runtime_checkable
class Scraper(Protocol):
    #: The id prefix of the entries this scraper yields (``timm``, ``hf``, ...).
    name: str
    #: True when the source needs the network (skipped offline).
    needs_network: bool

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        """Why this scraper cannot run now (missing package, offline), or None."""
        ...

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        """Yield every entry of the source (lazily)."""
        ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A scraper whose whole upstream can be summed up cheaply (an installed package's
    version plus the digest of the tables it reads). When the fingerprint equals the one of
    the last complete run, the sync skips the scraper: nothing upstream can have changed."""

    def fingerprint(self, ctx: SyncContext) -> str | None:
        """A string that changes whenever anything the scraper would yield changes."""
        ...


@runtime_checkable
class Importer(Protocol):
    """Reads one published document (``PATH|URL``) into records: entries it owns (ids with
    prefix ``entry_source``) and attachments to entries of any source. Never touches the
    database."""

    #: The importer's name (``securitynet import NAME``); also the provenance of its rows.
    name: str
    #: The id prefix of the entries it owns.
    entry_source: str

    def default_location(self, settings: Settings) -> str:
        """Where the document is read from when no PATH|URL is given."""
        ...

    def complete(self, location: str) -> bool:
        """Whether ``location`` holds the whole source (then entries not read again are
        marked removed)."""
        ...

    def iter_items(self, location: str, settings: Settings) -> Iterator[EntryRecord | Attachment]:
        """Read ``location`` and yield its entries and attachments."""
        ...
