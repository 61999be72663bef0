"""The page and its files are served without a key, with their content types and a strict CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import webhelpers  # noqa: F401  (puts tests/api on the path)
from apihelpers import fake_app
from fastapi.testclient import TestClient

from facesearch.web import CSP

WEB = Path(__file__).resolve().parents[2] / "src" / "facesearch" / "web"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(fake_app(tmp_path)) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "ctype", "marker"),
    [
        ("/", "text/html; charset=utf-8", "<title>facesearch</title>"),
        ("/web/app.js", "text/javascript; charset=utf-8", "/v1"),
        ("/web/style.css", "text/css; charset=utf-8", ".box"),
    ],
)
def test_page_and_files_need_no_key(client: TestClient, path: str, ctype: str, marker: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == ctype
    assert marker in r.text
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert client.head(path).status_code == 200


def test_csp_allows_only_self_and_blob_data_images() -> None:
    rules = dict(part.split(" ", 1) for part in CSP.split("; "))
    assert rules["default-src"] == "'none'"
    assert rules["script-src"] == rules["style-src"] == rules["connect-src"] == "'self'"
    assert rules["img-src"] == "'self' blob: data:"
    assert rules["frame-ancestors"] == "'none'"
    assert "unsafe" not in CSP


def test_the_api_still_needs_a_key_and_unknown_files_are_404(client: TestClient) -> None:
    r = client.get("/v1/collections")
    assert r.status_code == 401 and r.json()["error"]["code"] == "API_KEY_MISSING"
    missing = client.get("/web/secret.py")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert client.get("/web/../config.py").status_code == 404
    assert client.get("/v1/health").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/web") for p in paths)
    assert client.post("/").status_code == 405


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = (WEB / "index.html").read_text()
    js = (WEB / "app.js").read_text()
    css = (WEB / "style.css").read_text()
    # Every src/href of the page is the app's own (or a data: URI for the empty icon).
    for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert ref.startswith(("/web/", "#", "data:")), ref
    assert "style=" not in html and "onclick=" not in html  # inline code would break the CSP
    for text in (html, js, css):
        assert "http://" not in text and "https://" not in text and "@import" not in text
    # Every call goes to the public API: /v1 + path, or a face's thumbnail_url (/v1/faces/...).
    assert re.findall(r"\bfetch\((\w+)", js) == ["url", "url"]
    assert "let url = `/v1${path}`;" in js and 'xhr.open("POST", `/v1${path}`);' in js
