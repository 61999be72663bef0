"""API keys: extraction, authentication against a real store, roles, collection limits, redaction."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from facesearch.api.errors import install_error_handlers, success
from facesearch.api.security import (
    Authenticator,
    Principal,
    RedactSecretsFilter,
    extract_key,
    install_log_redaction,
    redact,
)
from facesearch.errors import Forbidden
from facesearch.storage import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    yield s
    s.close()


def principal(request: Request) -> Principal:
    """How a route dependency would use the authenticator."""
    auth: Authenticator = request.app.state.auth
    return auth.authenticate(request)


@pytest.fixture
def client(store: Store) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.state.auth = Authenticator(store)

    @app.get("/whoami")
    def whoami(p: Annotated[Principal, Depends(principal)]) -> dict[str, object]:
        return success({"key_id": p.key_id, "role": p.role})

    @app.post("/collections/{name}/persons")
    def enrol(name: str, p: Annotated[Principal, Depends(principal)]) -> dict[str, object]:
        p.require("write")
        p.check_collection(store.collection_info(name).id, name)
        return success({"collection": name})

    return TestClient(app)


def _headers(**kw: str) -> Request:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in kw.items()]
    return Request({"type": "http", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"x_api_key": "abc"}, "abc"),
        ({"x_api_key": "  abc  "}, "abc"),
        ({"authorization": "Bearer abc"}, "abc"),
        ({"authorization": "bEaReR   abc "}, "abc"),
        ({"authorization": "Basic dXNlcjpwdw=="}, None),
        ({"authorization": "Bearer"}, None),
        ({"authorization": "Bearer a b"}, None),
        ({"authorization": "abc"}, None),
        ({"x_api_key": "", "authorization": "Bearer abc"}, "abc"),
        ({"x_api_key": "one", "authorization": "Bearer two"}, "one"),
    ],
)
def test_extract_key(headers: dict[str, str], expected: str | None) -> None:
    assert extract_key(_headers(**headers)) == expected


def test_missing_key(client: TestClient) -> None:
    r = client.get("/whoami")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "API_KEY_MISSING"
    r = client.get("/whoami", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.json()["error"]["code"] == "API_KEY_MISSING"


def test_wrong_key(client: TestClient, store: Store) -> None:
    store.create_api_key("real", "reader")
    for key in ("fs_" + "x" * 43, "nonsense", "y" * 10_000):
        r = client.get("/whoami", headers={"X-API-Key": key})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "API_KEY_INVALID"


def test_both_headers_work(client: TestClient, store: Store) -> None:
    record, key = store.create_api_key("ci", "reader")
    for headers in (
        {"X-API-Key": key},
        {"Authorization": f"Bearer {key}"},
        {"authorization": f"bearer {key}"},
    ):
        r = client.get("/whoami", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"key_id": record.id, "role": "reader"}


def test_revoked_key(client: TestClient, store: Store) -> None:
    record, key = store.create_api_key("old", "admin")
    assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 200
    store.revoke_api_key(record.id)
    r = client.get("/whoami", headers={"X-API-Key": key})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "API_KEY_INVALID"


def test_role_and_collection_checks_over_http(client: TestClient, store: Store) -> None:
    _, reader = store.create_api_key("r", "reader")
    store.create_collection("staff")
    _, writer = store.create_api_key("w", "writer", collections=["staff"])
    r = client.post("/collections/staff/persons", headers={"X-API-Key": reader})
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert client.post("/collections/staff/persons", headers={"X-API-Key": writer}).status_code == 200
    store.create_collection("visitors")
    r = client.post("/collections/visitors/persons", headers={"X-API-Key": writer})
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"


ROLE_MATRIX = {
    "reader": {"read": True, "write": False, "admin": False},
    "writer": {"read": True, "write": True, "admin": False},
    "admin": {"read": True, "write": True, "admin": True},
    "bogus": {"read": False, "write": False, "admin": False},
}


@pytest.mark.parametrize("role", list(ROLE_MATRIX))
def test_role_matrix(role: str) -> None:
    p = Principal("key_1", "k", role)
    for action, allowed in ROLE_MATRIX[role].items():
        assert p.can(action) is allowed  # type: ignore[arg-type]
        if allowed:
            p.require(action)  # type: ignore[arg-type]
        else:
            with pytest.raises(Forbidden) as info:
                p.require(action)  # type: ignore[arg-type]
            assert info.value.code == "FORBIDDEN"


def test_collection_limited_key() -> None:
    p = Principal("key_1", "k", "admin", collections=("staff", "vip"))
    p.check_collection("staff")
    with pytest.raises(Forbidden) as missing:
        p.check_collection("no-such-collection")
    with pytest.raises(Forbidden) as other:
        p.check_collection("visitors")
    assert missing.value.message == other.value.message  # existence is not revealed
    assert [c for c in ("visitors", "vip", "staff") if p.allows(c)] == ["vip", "staff"]
    with pytest.raises(Forbidden):
        p.require_unlimited("manage API keys")
    unlimited = Principal("key_2", "k", "reader")
    unlimited.check_collection("anything")
    unlimited.require_unlimited("manage API keys")


def test_principal_from_store_record(store: Store) -> None:
    a, b = store.create_collection("a"), store.create_collection("b")
    record, key = store.create_api_key("scoped", "writer", collections=["a", b.id, "a"])
    verified = store.verify_api_key(key)
    assert verified is not None
    p = Principal.from_record(verified)
    assert (p.key_id, p.name, p.role, p.collections) == (record.id, "scoped", "writer", (a.id, b.id))
    assert record.reaches == ((a.id, "a"), (b.id, "b"))


def test_redact_text() -> None:
    key = "fs_" + "Ab3-_" * 8
    assert key not in redact(f"got {key} from client")
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer [REDACTED]"
    assert redact("X-API-Key: sekrit1") == "X-API-Key: [REDACTED]"
    assert redact("GET /v1/health?api_key=sekrit2&x=1") == "GET /v1/health?api_key=[REDACTED]&x=1"
    assert redact("fs_short and plain text") == "fs_short and plain text"


def test_redaction_filter_masks_captured_records(caplog: pytest.LogCaptureFixture) -> None:
    key = "fs_" + "Q" * 43
    log = logging.getLogger("facesearch.test.redaction")
    flt = RedactSecretsFilter()
    caplog.handler.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="facesearch.test.redaction"):
            log.info("key %s used", key)
            log.info("header %s", f"Bearer {key}")
            log.info("mapping %(k)s", {"k": key})
            log.info("object %s", [key])  # a non-string argument
            try:
                raise ValueError(f"bad key {key}")
            except ValueError:
                log.exception("failed")
    finally:
        caplog.handler.removeFilter(flt)
    assert len(caplog.records) == 5
    assert key not in caplog.text
    assert "fs_[REDACTED]" in caplog.text
    assert "Bearer [REDACTED]" in caplog.text


def test_uvicorn_access_args_stay_a_tuple() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/x?key=fs_" + "z" * 30, "1.1", 200),
        None,
    )
    assert RedactSecretsFilter().filter(record)
    assert isinstance(record.args, tuple) and len(record.args) == 5
    assert "zzzz" not in record.getMessage()


def test_install_log_redaction_is_idempotent() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        first = install_log_redaction()
        second = install_log_redaction()
        assert first is second
        assert handler.filters.count(first) == 1
        assert first in logging.getLogger("uvicorn.access").filters
        assert first in logging.getLogger("uvicorn.error").filters
    finally:
        root.removeHandler(handler)
        for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "facesearch"):
            lg = logging.getLogger(name)
            for target in [lg, *lg.handlers]:
                for f in list(target.filters):
                    if isinstance(f, RedactSecretsFilter):
                        target.removeFilter(f)
