"""Hostile and broken requests: each gets its documented error code, never a 500."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import assert_error, fake_app, new_key
from fastapi.testclient import TestClient
from PIL import Image

from fakes import face_photo, person_photo

IDENTIFY = "/v1/collections/staff/identify"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def jpeg_of(photo_png: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(photo_png)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = fake_app(tmp_path)
    app.state.service.create_collection("staff")
    app.state.service.create_person("staff", external_id="alice", images=[person_photo(10, 20)])
    with TestClient(app, headers={"X-API-Key": new_key(app, "admin")}) as c:
        yield c


def upload(client: TestClient, data: bytes, url: str = IDENTIFY, **form: Any) -> Any:
    return client.post(url, files={"image": ("photo.jpg", data, "image/jpeg")}, data=form)


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        pytest.param(jpeg_of(person_photo(10, 20))[:300], "IMAGE_DECODE_FAILED", 400, id="truncated-jpeg"),
        pytest.param(b"", "IMAGE_DECODE_FAILED", 400, id="empty-file"),
        pytest.param(b"GIF89a not supported", "IMAGE_DECODE_FAILED", 400, id="gif"),
        pytest.param(png_header_only(100_000, 100_000), "IMAGE_TOO_LARGE", 413, id="decompression-bomb"),
        pytest.param(face_photo(), "FACE_NOT_DETECTED", 422, id="no-face"),
    ],
)
def test_bad_photos(client: TestClient, data: bytes, code: str, status: int) -> None:
    assert_error(upload(client, data), status, code)
    assert_error(
        client.post(IDENTIFY, json={"image_base64": b64(data)} if data else {"image_base64": ""}),
        status,
        code,
    )


def test_truncated_jpeg_is_refused_on_enrolment_too(client: TestClient) -> None:
    truncated = jpeg_of(person_photo(50, 60))[:400]
    r = client.post(
        "/v1/collections/staff/persons", files=[("images", ("a.jpg", truncated))], data={"external_id": "t"}
    )
    assert_error(r, 400, "IMAGE_DECODE_FAILED")
    r = client.post("/v1/collections/staff/persons/per_x/faces", files={"image": ("a.jpg", truncated)})
    assert r.status_code in (400, 404) and r.json()["success"] is False


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b64(b"hello, I am a text file, not an image"), id="text-as-base64"),
        pytest.param("!!!not base64 at all!!!", id="bad-alphabet"),
        pytest.param("data:text/plain;base64," + b64(b"hello"), id="text-data-uri"),
        pytest.param("data:image/png," + b64(b"x"), id="data-uri-without-base64"),
        pytest.param("QUJD" * 3 + "Q", id="wrong-length"),
    ],
)
def test_non_image_base64(client: TestClient, text: str) -> None:
    err = assert_error(client.post(IDENTIFY, json={"image_base64": text}), 400, "IMAGE_DECODE_FAILED")
    if not text.startswith("aGVsbG8"):  # valid base64 of a non-image fails later, in the decoder
        assert err["details"]["field"] == "image"


def test_base64_data_uri_and_base64_wins_over_url(client: TestClient) -> None:
    uri = "data:image/png;base64," + b64(person_photo(10, 20, 1))
    r = client.post(IDENTIFY, json={"image_base64": uri, "image_url": "http://example.com/x.jpg"})
    assert r.status_code == 200 and r.json()["data"]["matches"][0]["external_id"] == "alice"


def test_body_over_the_request_limit(client: TestClient) -> None:
    big = b"\xff\xd8\xff" + b"\0" * (50 * 1024 * 1024)
    err = assert_error(upload(client, big), 413, "PAYLOAD_TOO_LARGE")
    assert err["details"]["limit_bytes"] == 25 * 1024 * 1024

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for _ in range(30):
            yield b"x" * (1024 * 1024)

    r = client.post(IDENTIFY, content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


def test_upload_over_the_image_limit(tmp_path: Path) -> None:
    app = fake_app(tmp_path, max_upload_bytes=50_000)
    app.state.service.create_collection("staff")
    with TestClient(app, headers={"X-API-Key": new_key(app, "admin")}) as c:
        assert_error(upload(c, b"\xff\xd8\xff" + b"\0" * 60_000), 413, "IMAGE_TOO_LARGE")
        r = c.post(IDENTIFY, json={"image_base64": b64(b"\xff\xd8\xff" + b"\0" * 60_000)})
        assert_error(r, 413, "IMAGE_TOO_LARGE")


@pytest.mark.parametrize(
    ("url", "kw"),
    [
        (IDENTIFY, {"content": b"just some text", "headers": {"content-type": "text/plain"}}),
        (IDENTIFY, {"content": b"\x89PNG...", "headers": {"content-type": "image/png"}}),
        (IDENTIFY, {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        (IDENTIFY, {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}),
        (IDENTIFY, {"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}),
        (
            IDENTIFY,
            {"content": b"--x\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        ),
        (IDENTIFY, {"content": b"garbage", "headers": {"content-type": "multipart/form-data"}}),
        (IDENTIFY, {"data": {"image": "not a file"}}),
        (IDENTIFY, {"json": {"image_base64": 12}}),
        (IDENTIFY, {"json": {"image_base64": b64(person_photo(10, 20)), "metadata": "[1"}}),
        (IDENTIFY, {"json": {"image_base64": b64(person_photo(10, 20)), "no_such_parameter": 1}}),
        (IDENTIFY, {"json": {}}),
        ("/v1/collections", {"content": b"name=x", "headers": {"content-type": "text/plain"}}),
        ("/v1/collections", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("/v1/collections", {"json": {"name": "bad name!"}}),
        ("/v1/collections", {"json": {"name": "x", "settings": {"default_threshold": 2}}}),
        ("/v1/collections/staff/persons", {"json": {"images_base64": "not-a-list-of-images"}}),
        ("/v1/collections/staff/persons", {"json": {"metadata": [1, 2]}}),
        ("/v1/verify", {"json": {"image_a_base64": b64(person_photo(10, 20)), "person": "per_x"}}),
    ],
)
def test_malformed_requests_are_4xx_with_a_code(client: TestClient, url: str, kw: dict[str, Any]) -> None:
    r = client.post(url, **kw)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    code = r.json()["error"]["code"]
    assert code in ("VALIDATION_ERROR", "IMAGE_DECODE_FAILED"), r.text[:300]


@pytest.mark.parametrize(
    ("name", "value"), [("top_k", 0), ("top_k", 101), ("threshold", -0.1), ("threshold", 1.5)]
)
def test_parameters_out_of_range(client: TestClient, name: str, value: float) -> None:
    photo = b64(person_photo(10, 20))
    err = assert_error(
        client.post(IDENTIFY, json={"image_base64": photo, name: value}), 422, "VALIDATION_ERROR"
    )
    assert err["details"]["field"] == name
    err = assert_error(upload(client, person_photo(10, 20), **{name: str(value)}), 422, "VALIDATION_ERROR")
    assert err["details"]["field"] == name
    r = client.post("/v1/search", json={"image_base64": photo, "collections": ["staff"], name: value})
    assert_error(r, 422, "VALIDATION_ERROR")


def test_unknown_ids_are_not_found(client: TestClient) -> None:
    person = client.get("/v1/collections/staff/persons").json()["data"]["persons"][0]["id"]
    for method, url in [
        ("GET", "/v1/collections/nope"),
        ("GET", "/v1/collections/col_nope"),
        ("DELETE", "/v1/collections/nope"),
        ("GET", "/v1/collections/staff/persons/per_nope"),
        ("PATCH", "/v1/collections/staff/persons/per_nope"),
        ("DELETE", "/v1/collections/staff/persons/per_nope"),
        ("DELETE", "/v1/collections/staff/faces/fac_nope"),
        ("GET", "/v1/faces/fac_nope/image"),
        ("GET", "/v1/faces/fac_nope/image?format=base64"),
        ("DELETE", "/v1/collections/staff/groups/nope"),
        ("DELETE", f"/v1/collections/staff/groups/nope/persons/{person}"),
        ("PUT", "/v1/collections/staff/groups/vip/persons/per_nope"),
        ("GET", "/v1/no/such/route"),
    ]:
        kw: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        assert_error(client.request(method, url, **kw), 404, "NOT_FOUND")
    assert_error(upload(client, person_photo(10, 20), url="/v1/collections/nope/identify"), 404, "NOT_FOUND")
    r = client.post(
        "/v1/collections/staff/persons/per_nope/faces", files={"image": ("a.png", person_photo(1, 2))}
    )
    assert_error(r, 404, "NOT_FOUND")


def test_conflicts(client: TestClient) -> None:
    assert_error(client.post("/v1/collections/staff/persons", json={"external_id": "alice"}), 409, "CONFLICT")
    assert_error(client.post("/v1/collections", json={"name": "staff"}), 409, "CONFLICT")
    client.post("/v1/collections/staff/groups", json={"name": "vip"})
    assert_error(client.post("/v1/collections/staff/groups", json={"name": "vip"}), 409, "CONFLICT")


def test_face_problems(client: TestClient) -> None:
    tiny = face_photo(((50, 60, 0), 150, 100, 12))
    r = client.post(
        "/v1/collections/staff/persons", files=[("images", ("a.png", tiny))], data={"external_id": "t"}
    )
    assert_error(r, 422, "FACE_QUALITY_TOO_LOW")
    r = upload(client, person_photo(10, 20), check_liveness="true")
    assert_error(r, 501, "LIVENESS_UNAVAILABLE")


@pytest.mark.parametrize(
    ("settings", "url", "reason"),
    [
        ({}, "http://example.com/face.jpg", "disabled"),
        (
            {"url_fetch_enabled": True, "url_allowed_hosts": ["127.0.0.1"]},
            "http://127.0.0.1:9/f.jpg",
            "private_address",
        ),
        ({"url_fetch_enabled": True, "url_allowed_hosts": ["127.0.0.1"]}, "http://example.com/f.jpg", "host"),
        ({"url_fetch_enabled": True, "url_allowed_hosts": ["127.0.0.1"]}, "file:///etc/passwd", "scheme"),
    ],
)
def test_image_url_refused(tmp_path: Path, settings: dict[str, Any], url: str, reason: str) -> None:
    app = fake_app(tmp_path, **settings)
    app.state.service.create_collection("staff")
    with TestClient(app, headers={"X-API-Key": new_key(app, "admin")}) as c:
        err = assert_error(c.post(IDENTIFY, json={"image_url": url}), 400, "IMAGE_URL_REFUSED")
        assert err["details"]["reason"] == reason and err["details"]["field"] == "image"
        err = assert_error(c.post(IDENTIFY, data={"image_url": url}), 400, "IMAGE_URL_REFUSED")
        assert err["details"]["reason"] == reason


def test_weird_path_segments(client: TestClient) -> None:
    for ref in ("%00", "..%2F..%2Fetc", "a" * 5000, "%F0%9F%98%80", "col_" + "x" * 300, "' OR 1=1 --"):
        r = client.get(f"/v1/collections/{ref}")
        assert r.status_code in (404, 422), (ref, r.status_code)
        assert r.json()["success"] is False
