"""`check_liveness` over HTTP: identify and enrolment refuse a spoof with LIVENESS_FAILED and a reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelpers import assert_error, new_key
from fastapi.testclient import TestClient

from facesearch.api.app import create_app
from facesearch.config import Settings
from facesearch.service import FaceSearch
from fakes import CLOSED_B, SPOOF_B, FakeLiveness, fake_pack, person_photo


def _client(tmp_path: Path, liveness: object) -> TestClient:
    pack = dataclasses.replace(fake_pack(), liveness=liveness)
    svc = FaceSearch(Settings(data_dir=tmp_path, default_pack="fake", workers=0), packs={"fake": pack})
    svc.create_collection("staff")
    app = create_app(service=svc)
    client = TestClient(app)
    client.headers["X-API-Key"] = new_key(app, "writer")
    return client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, FakeLiveness()) as c:
        yield c


def png(b: int) -> tuple[str, bytes, str]:
    return ("face.png", person_photo(30, 40, b), "image/png")


def test_enrolment_with_liveness(client: TestClient) -> None:
    files = [("images", png(1)), ("images", png(SPOOF_B))]
    err = assert_error(
        client.post(
            "/v1/collections/staff/persons",
            data={"external_id": "bob", "check_liveness": "true"},
            files=files,
        ),
        422,
        "LIVENESS_FAILED",
    )
    assert err["details"]["reason"] == "FACE_NOT_LIVE" and err["details"]["image"] == 1
    assert client.get("/v1/collections/staff/persons").json()["data"]["persons"] == []  # nothing half-written
    # Without the check the same photos enrol (liveness is opt-in).
    made = client.post("/v1/collections/staff/persons", data={"external_id": "bob"}, files=files)
    assert made.status_code == 201, made.text
    person = made.json()["data"]["id"]
    faces = f"/v1/collections/staff/persons/{person}/faces"
    err = assert_error(
        client.post(faces, data={"check_liveness": "true"}, files={"image": png(CLOSED_B)}),
        422,
        "LIVENESS_FAILED",
    )
    assert err["details"]["reason"] == "EYES_CLOSED"
    assert client.post(faces, data={"check_liveness": "true"}, files={"image": png(3)}).status_code == 201


def test_identify_with_liveness(client: TestClient) -> None:
    client.post("/v1/collections/staff/persons", data={"external_id": "bob"}, files={"images": png(1)})
    path = "/v1/collections/staff/identify"
    live = client.post(path, data={"check_liveness": "true"}, files={"image": png(2)})
    assert live.json()["data"]["matches"][0]["external_id"] == "bob"
    err = assert_error(
        client.post(path, data={"check_liveness": "true"}, files={"image": png(SPOOF_B)}),
        422,
        "LIVENESS_FAILED",
    )
    assert err["details"]["reason"] == "FACE_NOT_LIVE"


def test_liveness_unavailable_over_http(tmp_path: Path) -> None:
    with _client(tmp_path, None) as c:
        for path, field in (
            ("/v1/collections/staff/identify", "image"),
            ("/v1/collections/staff/persons", "images"),
        ):
            data = {"check_liveness": "true", "external_id": "x"}
            assert_error(c.post(path, data=data, files={field: png(1)}), 501, "LIVENESS_UNAVAILABLE")
