"""The error envelope: statuses by code, validation details, 404/405, unhandled errors."""

from __future__ import annotations

import logging
import math
from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from facesearch import errors
from facesearch.api.errors import STATUS_BY_CODE, install_error_handlers, success

DOCUMENTED = {  # API.md "Error codes", plus MODEL_UNAVAILABLE
    errors.ValidationError("bad top_k", field="top_k"): 422,
    errors.ImageDecodeError("not an image"): 400,
    errors.ImageTooLarge("too big"): 413,
    errors.ImageUrlRefused("refused"): 400,
    errors.NoFaceDetected("no face"): 422,
    errors.FaceQualityTooLow("too small", reason="FACE_TOO_SMALL"): 422,
    errors.LivenessFailed("not live", details={"reason": "FACE_NOT_LIVE"}): 422,
    errors.LivenessUnavailable("no liveness model"): 501,
    errors.ModelUnavailable("install the models"): 503,
    errors.ApiKeyMissing("no key"): 401,
    errors.ApiKeyInvalid("bad key"): 401,
    errors.Forbidden("nope"): 403,
    errors.NotFound("no such person", details={"person": "per_x"}): 404,
    errors.Conflict("taken"): 409,
    errors.PayloadTooLarge("too large"): 413,
    errors.FaceSearchError("generic"): 500,
}


class Body(BaseModel):
    top_k: int = Field(1, ge=1, le=100)
    threshold: float = 0.5


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    raisers = {type(e).__name__: e for e in DOCUMENTED}

    @app.get("/raise/{name}")
    def raise_it(name: str) -> None:
        raise raisers[name]

    @app.get("/ok")
    def ok() -> dict[str, object]:
        return success({"x": 1})

    @app.get("/search")
    def search(top_k: Annotated[int, Query(ge=1, le=100)] = 1) -> dict[str, object]:
        return success({"top_k": top_k})

    @app.post("/json")
    def post_json(body: Body) -> dict[str, object]:
        return success(body.model_dump())

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/nan")
    def nan() -> None:
        raise errors.ValidationError("odd", details={"value": math.nan, "when": object()})

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


def test_every_code_has_a_status() -> None:
    for exc, status in DOCUMENTED.items():
        assert STATUS_BY_CODE[exc.code] == status


@pytest.mark.parametrize("exc", list(DOCUMENTED), ids=lambda e: type(e).__name__)
def test_facesearch_errors_map_to_documented_status(client: TestClient, exc: errors.FaceSearchError) -> None:
    r = client.get(f"/raise/{type(exc).__name__}")
    assert r.status_code == DOCUMENTED[exc]
    assert r.json() == {"success": False, "error": exc.to_dict()}
    assert r.headers["x-request-id"]
    if r.status_code == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_success_envelope_and_request_id(client: TestClient) -> None:
    r = client.get("/ok")
    assert r.json() == {"success": True, "data": {"x": 1}}
    assert len(r.headers["x-request-id"]) == 32
    assert r.headers["x-request-id"] != client.get("/ok").headers["x-request-id"]


def test_query_validation_names_the_field(client: TestClient) -> None:
    r = client.get("/search", params={"top_k": 500})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    assert err["details"]["field"] == "top_k"
    assert err["details"]["errors"][0]["loc"] == ["query", "top_k"]
    assert "top_k" in err["message"]
    assert "input" not in err["details"]["errors"][0]


def test_body_validation_lists_every_field(client: TestClient) -> None:
    r = client.post("/json", json={"top_k": 0, "threshold": "high"})
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert details["field"] == "top_k"
    assert details["fields"] == ["top_k", "threshold"]
    assert {e["type"] for e in details["errors"]} == {"greater_than_equal", "float_parsing"}


def test_malformed_json_is_a_validation_error(client: TestClient) -> None:
    r = client.post("/json", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_details_are_made_json_safe(client: TestClient) -> None:
    r = client.get("/nan")
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert details["value"] == "nan"
    assert details["when"].startswith("<object")


def test_unknown_route_is_not_found(client: TestClient) -> None:
    r = client.get("/nowhere")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "NOT_FOUND"
    assert err["details"] == {"path": "/nowhere"}
    assert r.headers["x-request-id"]


def test_wrong_method(client: TestClient) -> None:
    r = client.delete("/ok")
    assert r.status_code == 405
    err = r.json()["error"]
    assert err["code"] == "METHOD_NOT_ALLOWED"
    assert err["details"]["allowed"] == ["GET"]
    assert r.headers["allow"] == "GET"


def test_unhandled_exception_is_internal_with_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="facesearch.api"):
        r = client.get("/boom", headers={"X-API-Key": "fs_" + "k" * 40})
    assert r.status_code == 500
    body = r.json()
    assert body["success"] is False
    assert body["error"]["code"] == "INTERNAL"
    rid = body["error"]["details"]["request_id"]
    assert len(rid) == 32 and r.headers["x-request-id"] == rid
    assert "secret internals" not in r.text and "Traceback" not in r.text
    records = [rec for rec in caplog.records if rec.name == "facesearch.api"]
    assert len(records) == 1
    assert rid in records[0].getMessage()
    assert records[0].exc_info is not None
    assert "fs_" not in records[0].getMessage()
