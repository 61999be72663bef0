"""Shared bits of the web page tests: where Chromium is, how it is started, the server command."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))  # apihelpers

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FACESEARCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
#: Screenshots of each step (gitignored); the README's picture goes to docs/.
SHOTS = REPO / "test-output" / "web"
README_SHOT = REPO / "docs" / "web-identify.png"


@dataclass
class Server:
    url: str
    admin_key: str


def serve_cmd(data_dir: Path, port: int) -> list[str]:
    script = Path(sys.executable).parent / "facesearch"
    base = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from facesearch.cli import main; main()"]
    )
    # workers 0: detection and embedding in the server process (one model load, fast start).
    return [*base, "serve", "--port", str(port), "--workers", "0", "--data-dir", str(data_dir)]
