"""The whole exception family of securitynet.

Every error a user can meet derives from :class:`SecurityNetError` and carries structured
fields (never only a message), so the CLI can print one line with a hint and library
callers can branch on the type. Lower-level exceptions are translated with ``raise ... from``.
"""

from __future__ import annotations

from typing import Any


class SecurityNetError(Exception):
    """Base of every error raised on purpose by securitynet.

    ``hint`` is a short, actionable sentence the CLI prints under the message.
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.fields: dict[str, Any] = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


# --- ids, lookups, user input -------------------------------------------------------------


class InvalidIdError(SecurityNetError, ValueError):
    """An entry id that is not ``source:name``."""

    hint = "Entry ids look like 'timm:resnet50.a1_in1k' or 'hf:google/vit-base-patch16-224'."


class NotFoundError(SecurityNetError, LookupError):
    """Something asked for by name does not exist (an entry, a file, a data set)."""


class EntryNotFoundError(NotFoundError):
    """No catalogue entry has this id."""

    hint = "Run 'securitynet list' to see ids, or 'securitynet sync' to fill the catalogue."


class InvalidQueryError(SecurityNetError, ValueError):
    """A filter, sort key or format a user gave is not one we know."""


class ConfigurationError(SecurityNetError):
    """A setting (environment variable, option) has a value we cannot use."""


# --- catalogue ------------------------------------------------------------------------------


class CatalogueError(SecurityNetError):
    """The catalogue database cannot be opened, migrated or written."""


class DamagedCatalogueError(CatalogueError):
    """The catalogue file is not a whole SQLite database (truncated, overwritten, foreign)."""

    hint = (
        "Move it aside (or restore a backup) and run 'securitynet sync' to build a new "
        "catalogue, or point SECURITYNET_DATABASE_URL at another file."
    )


class MigrationError(CatalogueError):
    """The database schema is not at a revision this version of securitynet understands."""

    hint = "Run 'securitynet db upgrade'."


class ReadOnlyViolationError(CatalogueError):
    """A statement given to the read-only SQL interface would change the database."""

    hint = "'securitynet sql' only runs queries (SELECT / WITH / EXPLAIN)."


class QueryTimeoutError(CatalogueError):
    """A read-only SQL query ran past its time limit."""

    hint = "Narrow the query, or raise --timeout."


# --- upstream sources -----------------------------------------------------------------------


class UpstreamError(SecurityNetError):
    """An upstream source (hub, API, registry) answered with something we cannot use."""


class RateLimitedError(UpstreamError):
    """The upstream source refused us for now (HTTP 429, or 403 with an exhausted quota)."""

    hint = (
        "Wait and run the sync again; it resumes where it stopped. Set a token to raise the limit."
    )


class MalformedUpstreamError(UpstreamError):
    """Upstream data (JSON, YAML, CSV, a model card) does not parse or has the wrong shape."""


class NoNetworkError(UpstreamError):
    """There is no network to reach upstream with (the name does not resolve, nothing routes
    to the host): retrying cannot help, so the request fails at once."""

    hint = (
        "Check the connection. Offline, cached files still load and the registry sources "
        "still sync (--offline / SECURITYNET_OFFLINE=1)."
    )


class SourceUnavailableError(UpstreamError):
    """A source cannot run here (offline, missing optional dependency, no local copy)."""


# --- loader ---------------------------------------------------------------------------------


class LoaderError(SecurityNetError):
    """An entry cannot be turned into a ready net."""


class UnsafeCheckpointError(LoaderError):
    """A checkpoint was refused because reading it could run code or is malformed."""

    hint = "securitynet never executes code from a checkpoint; the file was not loaded."


class IntegrityError(LoaderError):
    """A file's size or hash does not match what the catalogue pinned."""

    hint = "The cached copy was discarded; run the command again to fetch a fresh copy."


class OfflineError(LoaderError):
    """The file is not in the cache and the network may not be used."""

    hint = "Run once without --offline (or unset SECURITYNET_OFFLINE) to fetch it."


class ArchitectureMismatchError(LoaderError):
    """The checkpoint's tensor names or shapes do not fit the declared architecture."""


class UnsupportedEntryError(LoaderError):
    """No builder knows how to build a net for this entry."""


# --- attacks and evaluation -----------------------------------------------------------------


class AttackError(SecurityNetError):
    """An attack or defence cannot run with the given net, data or configuration."""


class DataShapeError(AttackError, ValueError):
    """Evaluation data does not have the shape the net expects."""


class UnsupportedLayerError(AttackError):
    """A net holds layers that interval bound propagation cannot bound (``layers`` names them)."""

    hint = (
        "The verified attacks bound Sequential-style nets of linear, conv, batch-norm, "
        "ReLU-like, pooling and shape layers; use the other attacks on this net."
    )


class AttackBudgetError(AttackError):
    """An attack's estimated cost (shadow-model training) exceeds the budget it was given."""

    hint = "Raise the budget (--budget-s), use fewer shadow models, or run on a GPU."


# --- evaluation data ------------------------------------------------------------------------


class DataError(SecurityNetError):
    """An evaluation data set cannot be read, or a member / non-member protocol is invalid."""


class DatasetNotFoundError(DataError, NotFoundError):
    """A named data set is unknown, or its files are not where they were looked for."""

    hint = "Set SECURITYNET_DATA_DIR (or --data-dir) to the folder holding the data set's files."


class MalformedDataError(DataError):
    """A data file (IDX, index list) does not parse or has the wrong shape."""


class ProtocolError(DataError, ValueError):
    """A member / non-member selection that cannot be parsed or does not fit the data."""

    hint = "Use a split ('train', 'test'), a slice ('train[:3000]') or '@FILE' (one train index per line)."
