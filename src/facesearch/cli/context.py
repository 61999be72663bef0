"""Opening the service from the CLI (data folder from --data-dir or FACESEARCH_DATA_DIR)."""

from __future__ import annotations

from pathlib import Path

from facesearch.config import Settings


def settings_for(data_dir: Path | None) -> Settings:
    """Settings from the environment, with the data folder overridden when given."""
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings
