"""Fixtures of the web page tests: a real server on loopback, Debian's Chromium driven by Playwright.

The browser is never downloaded: ``scripts/install-browser.sh`` (``make browser``) installs
Debian's ``chromium`` with apt-get when it is missing; without it these tests skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webhelpers  # noqa: F401  (puts tests/api on the path, for apihelpers)
from apihelpers import ServerProcess, admin_key_file, free_port
from webhelpers import CHROMIUM, CHROMIUM_ARGS, SHOTS, Server, serve_cmd


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Iterator[Server]:
    """``facesearch serve`` on a free loopback port over a fresh data folder, with its admin key."""
    work = tmp_path_factory.mktemp("web")
    port = free_port()
    server = ServerProcess(serve_cmd(work / "data", port), work, port)
    try:
        server.wait_ready(120)
        yield Server(server.url, admin_key_file(work / "data"))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (never a downloaded one); skips when it is not installed."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        hint = (
            "run `make browser` (apt-get install chromium)" if shutil.which("apt-get") else "install chromium"
        )
        pytest.skip(f"Chromium not found at {CHROMIUM}: {hint}, or set FACESEARCH_CHROMIUM")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install playwright"
    )
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page; fails the test on a script error or a CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(msg: Any) -> None:
        text = msg.text
        if msg.type == "error" and "Failed to load resource" not in text:
            problems.append(f"console error: {text}")
        elif "Content Security Policy" in text or "Refused to" in text:
            problems.append(f"CSP: {text}")

    pg.on("console", on_console)
    try:
        yield pg
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
