"""Settings read from ``SECURITYNET_*`` environment variables (and a ``.env`` file, if any).

Nothing is read at import time: call :func:`get_settings` where a value is needed, so tests
and users can change the environment between calls.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("securitynet", appauthor=False))


class Settings(BaseSettings):
    """Every knob of securitynet. Each field ``x`` is read from ``SECURITYNET_X``."""

    model_config = SettingsConfigDict(env_prefix="SECURITYNET_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Root of the database and cache.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalogue; default: SQLite at $SECURITYNET_HOME/catalogue.db.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Weight cache; default: $SECURITYNET_HOME/cache."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Evaluation data sets (MNIST IDX files in mnist/, ...); default: $SECURITYNET_HOME/data.",
    )
    offline: bool = Field(default=False, description="Never touch the network.")
    debug: bool = Field(default=False, description="Show tracebacks in the CLI.")
    timm_results: Path | None = Field(
        default=None, description="Folder holding timm's results-imagenet*.csv tables."
    )
    timm_results_url: str = Field(
        default="https://raw.githubusercontent.com/huggingface/pytorch-image-models/main/results",
        description="Where timm's results tables are fetched from when online.",
    )
    securitynet_release_url: str = Field(
        default="https://raw.githubusercontent.com/TrustAIRLab/SecurityNet/main",
        description="Raw-file base of the SecurityNet repository ('import securitynet-release').",
    )
    robustbench_model_info: str = Field(
        default="https://codeload.github.com/RobustBench/robustbench/tar.gz/refs/heads/master",
        description="RobustBench's model_info: a local folder, a .tar.gz of the repository, or a URL of one file.",
    )
    zenodo_api_url: str = Field(
        default="https://zenodo.org/api", description="Zenodo's REST API ('sync --source zenodo')."
    )
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub REST API (GitHub Enterprise: https://HOST/api/v3)."
    )
    github_raw_url: str = Field(
        default="https://raw.githubusercontent.com", description="Raw files: {base}/OWNER/REPO/COMMIT/PATH."
    )
    github_download_url: str = Field(
        default="https://github.com", description="Release assets: {base}/OWNER/REPO/releases/download/TAG/NAME."
    )
    github_lfs_url: str = Field(
        default="https://media.githubusercontent.com/media",
        description="Git LFS objects: {base}/OWNER/REPO/COMMIT/PATH.",
    )
    github_token: str | None = Field(
        default=None, repr=False, description="GitHub token; default: $GITHUB_TOKEN (read when a client is made)."
    )
    github_max_seconds: float = Field(
        default=600.0, gt=0, description="Most seconds one GitHub crawl may spend waiting and retrying."
    )
    http_timeout: float = Field(default=30.0, gt=0)
    http_retries: int = Field(default=5, ge=0)
    http_backoff: float = Field(
        default=1.0,
        ge=0,
        description="Seconds before the first retry of a failed request; doubles per retry (max 8 s).",
    )
    hf_endpoint: str | None = Field(
        default=None,
        description="Hugging Face Hub URL; default: $HF_ENDPOINT (read when a sync starts), else huggingface.co.",
    )
    hf_token: str | None = Field(
        default=None,
        repr=False,
        description="Hub token; default: huggingface_hub's own ($HF_TOKEN or a stored login).",
    )
    hf_workers: int = Field(
        default=8, gt=0, le=64, description="Concurrent file reads while crawling the Hub."
    )
    sql_database_url: str | None = Field(
        default=None,
        repr=False,
        description="URL 'securitynet sql' connects with: on PostgreSQL a login role that may only "
        "SELECT (see the README); default: the catalogue's own URL (refused on PostgreSQL for a "
        "role that could read server files or replicate).",
    )
    hf_max_wait: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds one Hub request may spend paused by the Hub's rate limit (429) "
        "before its entry is left for the next sync to read.",
    )
    sql_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a read-only SQL query may run."
    )
    sql_max_rows: int = Field(
        default=10_000, gt=0, description="Rows a read-only SQL query may return."
    )
    sync_batch_size: int = Field(default=500, gt=0)

    @field_validator("home", "cache_dir", "data_dir", "timm_results", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'catalogue.db'}"

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.home / "data"

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.home / "cache"


def get_settings(**overrides: object) -> Settings:
    """A fresh :class:`Settings` from the environment, with explicit ``overrides`` on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
