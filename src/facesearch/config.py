"""Settings from the environment (prefix ``FACESEARCH_``, nested with ``__``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class PackConfig:
    """What building a model pack needs from the settings (picklable: worker processes get it)."""

    models_dir: Path  # the folder holding onnx/ (the ONNX pack installed by `facesearch models`)
    dlib_engine: str = "auto"  # auto | onnxruntime | dlib: what runs dlib's descriptor network

    @classmethod
    def from_environment(cls) -> PackConfig:
        """The configuration ``Settings()`` reads from the environment (for tools that take none)."""
        return Settings().pack_config()


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "facesearch" / "embeddings"


class Settings(BaseSettings):
    """Everything configurable; unsafe values are refused at start-up."""

    model_config = SettingsConfigDict(env_prefix="FACESEARCH_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="where SQLite, index snapshots and caches live")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in data_dir")
    index_url: str = Field(default="memory://", description="memory:// (exact + HNSW in process)")
    default_pack: str = Field(
        default="auto",
        description="model pack of new collections; auto: onnx when its models are installed, else dlib",
    )

    # Models.
    models_dir: Path | None = Field(
        default=None, description="folder holding the installed ONNX pack (onnx/); default <data_dir>/models"
    )
    dlib_engine: str = Field(
        default="auto", description="what runs dlib's descriptor: auto, onnxruntime or dlib (dlib-bin's own)"
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="embedding cache of the eval tools ($XDG_CACHE_HOME/facesearch/embeddings)",
    )

    # Image limits.
    max_upload_bytes: int = Field(default=15 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=40_000_000, ge=10_000)
    max_request_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)

    # URL fetching (off by default).
    url_fetch_enabled: bool = False
    url_allowed_hosts: list[str] = Field(default_factory=list)
    url_allow_private: bool = False
    url_timeout_s: float = Field(default=10.0, gt=0, le=120)

    # Stored face sources (collection setting keep_source): the AES-256-GCM key, urlsafe base64 of
    # 32 random bytes (`facesearch sources new-key` prints one). Never logged, never stored.
    source_key: SecretStr | None = Field(default=None, repr=False)

    # The audit log (every HTTP request that searches or changes something): days kept.
    audit_retention_days: int = Field(default=365, ge=1, le=36500)

    # CPU work.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0, le=64)

    # Server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("data_dir", "models_dir", "cache_dir")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @model_validator(mode="after")
    def _enforce_safe(self) -> Settings:
        if self.url_fetch_enabled and not self.url_allowed_hosts and not self.url_allow_private:
            # An open fetcher with no allow-list is an SSRF tool; refuse to start like that.
            raise ValueError("FACESEARCH_URL_FETCH_ENABLED needs FACESEARCH_URL_ALLOWED_HOSTS (JSON list)")
        return self

    @property
    def resolved_models_dir(self) -> Path:
        """Where the installed models live: ``models_dir``, else ``<data_dir>/models``."""
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    def pack_config(self) -> PackConfig:
        """What ``build_pack`` needs from these settings."""
        return PackConfig(models_dir=self.resolved_models_dir, dlib_engine=self.dlib_engine)

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'facesearch.db').resolve()}"
