"""Corrections and unknown faces over HTTP (TestClient, fake pack) and through facesearch.Client."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import assert_error, fake_app, new_key, staff_client, thread_server
from fastapi.testclient import TestClient

import facesearch
from facesearch import errors
from fakes import face_photo, person_photo

ALICE, BOB, STRANGER = (10, 20), (30, 40), (90, 100)
P = "/v1/collections/staff/persons"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with staff_client(tmp_path) as (c, h):
        for ext, photos in (
            ("alice", [person_photo(*ALICE, b) for b in (0, 3)]),
            ("bob", [person_photo(*BOB)]),
        ):
            body = {"external_id": ext, "images_base64": [_b64(x) for x in photos]}
            assert c.post(P, headers=h, json=body).status_code == 201
        yield c, h


def _identify(c: TestClient, h: dict[str, str], photo: bytes, **params: Any) -> dict[str, Any]:
    r = c.post("/v1/collections/staff/identify", headers=h, json={"image_base64": _b64(photo), **params})
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def test_negative_from_a_photo_and_from_a_face(api: tuple[TestClient, dict[str, str]]) -> None:
    c, h = api
    look = person_photo(*ALICE, 9)
    assert _identify(c, h, look, threshold=0.0)["matches"][0]["external_id"] == "alice"
    r = c.post(f"{P}/alice/negatives", headers=h, files={"image": ("x.png", look, "image/png")})
    assert r.status_code == 201, r.text
    neg = r.json()["data"]
    assert neg["id"].startswith("neg_") and neg["removed_face_id"] is None
    image = c.get(neg["thumbnail_url"], headers=h)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    again = _identify(c, h, person_photo(*ALICE, 9, side=70), threshold=0.0, top_k=3)
    assert "alice" not in [m["external_id"] for m in again["matches"]] and again["vetoed"] == 1
    listed = c.get(f"{P}/alice/negatives", headers=h).json()["data"]["negatives"]
    assert [n["id"] for n in listed] == [neg["id"]]
    assert c.get("/v1/health").json()["data"]["counts"]["negatives"] == 1
    # From a stored face: a wrong face of Alice's becomes a negative and leaves her.
    face = c.post(f"{P}/alice/faces", headers=h, json={"image_base64": _b64(person_photo(*ALICE, 8))})
    face_id = face.json()["data"]["id"]
    r = c.post(f"{P}/alice/negatives", headers=h, json={"face_id": face_id})
    assert r.status_code == 201 and r.json()["data"]["removed_face_id"] == face_id
    assert c.delete(f"{P}/alice/negatives/{neg['id']}", headers=h).json()["data"] == {
        "id": neg["id"],
        "deleted": True,
    }
    assert_error(c.delete(f"{P}/alice/negatives/{neg['id']}", headers=h), 404, "NOT_FOUND")
    assert_error(c.post(f"{P}/alice/negatives", headers=h, json={}), 422, "VALIDATION_ERROR")
    assert_error(c.post(f"{P}/alice/negatives", headers=h, json={"face_id": "fac_nope"}), 404, "NOT_FOUND")
    assert_error(c.post(f"{P}/nobody/negatives", headers=h, json={"face_id": face_id}), 404, "NOT_FOUND")
    blank = {"image_base64": _b64(face_photo(size=(200, 200)))}
    assert_error(c.post(f"{P}/alice/negatives", headers=h, json=blank), 422, "FACE_NOT_DETECTED")


def test_different_people_merge_and_split(api: tuple[TestClient, dict[str, str]]) -> None:
    c, h = api
    twin = {"external_id": "eve", "images_base64": [_b64(person_photo(*ALICE, 4))]}
    assert c.post(P, headers=h, json=twin).status_code == 201
    r = c.post(f"{P}/alice/different", headers=h, json={"person": "eve"})
    assert [x["external_id"] for x in r.json()["data"]["persons"]] == ["eve"]
    found = _identify(c, h, person_photo(*ALICE, 2))  # top_k 1: one named, both reported
    assert len(found["matches"]) == 1 and len(found["ambiguous"]) == 2
    assert found["ambiguous"][0]["person_id"] == found["matches"][0]["person_id"]
    assert {a["external_id"] for a in found["ambiguous"]} == {"alice", "eve"}
    assert_error(c.post(f"{P}/alice/merge", headers=h, json={"from": "eve"}), 409, "CONFLICT")
    assert c.delete(f"{P}/alice/different/eve", headers=h).status_code == 200
    assert c.get(f"{P}/alice/different", headers=h).json()["data"]["persons"] == []
    eve_id = c.get(f"{P}/eve", headers=h).json()["data"]["id"]
    r = c.post(f"{P}/alice/merge", headers=h, json={"from": "eve", "metadata": "union"})
    assert r.status_code == 200 and len(r.json()["data"]["faces"]) == 3
    gone = assert_error(c.get(f"{P}/{eve_id}", headers=h), 404, "NOT_FOUND")
    assert gone["details"]["merged_into"] == r.json()["data"]["id"]
    assert_error(
        c.post(f"{P}/alice/merge", headers=h, json={"from": "bob", "metadata": "x"}), 422, "VALIDATION_ERROR"
    )
    assert_error(c.post(f"{P}/alice/merge", headers=h, json={"from": eve_id}), 404, "NOT_FOUND")
    faces = [f["id"] for f in r.json()["data"]["faces"]]
    split = c.post(
        f"{P}/alice/split", headers=h, json={"faces": faces[-1:], "external_id": "eve2", "name": "Eve"}
    )
    assert split.status_code == 201 and [f["id"] for f in split.json()["data"]["faces"]] == faces[-1:]
    assert len(c.get(f"{P}/alice", headers=h).json()["data"]["faces"]) == 2
    assert_error(c.post(f"{P}/alice/split", headers=h, json={"faces": []}), 422, "VALIDATION_ERROR")
    assert_error(c.post(f"{P}/alice/split", headers=h, json={"faces": ["fac_x"]}), 404, "NOT_FOUND")


def test_unknown_faces_over_http(api: tuple[TestClient, dict[str, str]]) -> None:
    c, h = api
    assert (
        c.patch("/v1/collections/staff", headers=h, json={"settings": {"remember_unknown": True}}).status_code
        == 200
    )
    ids = [_identify(c, h, person_photo(*STRANGER, b))["unknown_id"] for b in (0, 1)]
    group = face_photo(((*STRANGER, 2), 10, 10, 80), ((*BOB, 0), 200, 10, 80))
    r = c.post("/v1/collections/staff/identify-all", headers=h, json={"image_base64": _b64(group)})
    assert r.json()["data"]["unrecognized"][0]["unknown_id"].startswith("unk_")
    page = c.get("/v1/collections/staff/unknowns?limit=2", headers=h).json()["data"]
    assert len(page["unknowns"]) == 2 and page["unknowns"][0]["source"] == "identify_all"
    assert all(len(u["request_id"]) == 32 for u in page["unknowns"])
    rest = c.get(f"/v1/collections/staff/unknowns?cursor={page['next_cursor']}", headers=h).json()["data"]
    assert [u["id"] for u in rest["unknowns"]] == [ids[0]] and rest["next_cursor"] is None
    assert r.headers["x-request-id"] == page["unknowns"][0]["request_id"]
    listing = c.get("/v1/collections/staff/unknowns/clusters", headers=h).json()["data"]
    assert listing["unknown_faces"] == 3 and listing["clustered"] == 3
    top = listing["clusters"][0]
    assert top["size"] == 3 and top["id"] == ids[0] and len(top["sample_urls"]) == 3
    thumb = c.get(top["sample_urls"][0], headers=h)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    assert_error(c.get("/v1/collections/staff/unknowns/clusters?limit=0", headers=h), 422, "VALIDATION_ERROR")
    assert_error(c.get("/v1/collections/staff/unknowns/unk_nope/image", headers=h), 404, "NOT_FOUND")
    body = {"cluster": top["id"], "external_id": "sam", "name": "Sam", "groups": ["visitors"]}
    named = c.post("/v1/collections/staff/unknowns/persons", headers=h, json=body)
    assert named.status_code == 201 and named.json()["data"]["faces_added"] == 3
    assert _identify(c, h, person_photo(*STRANGER, 5))["matches"][0]["external_id"] == "sam"
    assert c.get("/v1/collections/staff/unknowns/clusters", headers=h).json()["data"]["clusters"] == []
    assert_error(
        c.post("/v1/collections/staff/unknowns/persons", headers=h, json={"unknowns": ids}), 404, "NOT_FOUND"
    )
    assert_error(
        c.post("/v1/collections/staff/unknowns/persons", headers=h, json={}), 422, "VALIDATION_ERROR"
    )
    too_many = {"unknowns": [f"unk_{i}" for i in range(1001)]}
    assert_error(
        c.post("/v1/collections/staff/unknowns/forget", headers=h, json=too_many), 422, "VALIDATION_ERROR"
    )
    bad = {"settings": {"unknown_retention_days": 0}}
    assert_error(c.patch("/v1/collections/staff", headers=h, json=bad), 422, "VALIDATION_ERROR")


def test_a_reader_reads_corrections_but_cannot_make_them(tmp_path: Path) -> None:
    app = fake_app(tmp_path)
    with TestClient(app) as c:
        admin = {"X-API-Key": new_key(app, "admin")}
        reader = {"X-API-Key": new_key(app, "reader")}
        c.post(
            "/v1/collections", headers=admin, json={"name": "staff", "settings": {"remember_unknown": True}}
        )
        c.post(P, headers=admin, json={"external_id": "alice", "images_base64": [_b64(person_photo(*ALICE))]})
        assert c.get(f"{P}/alice/negatives", headers=reader).status_code == 200
        assert c.get("/v1/collections/staff/unknowns/clusters", headers=reader).status_code == 200
        photo = {"image_base64": _b64(person_photo(*STRANGER))}
        assert_error(c.post(f"{P}/alice/negatives", headers=reader, json=photo), 403, "FORBIDDEN")
        assert_error(c.post(f"{P}/alice/merge", headers=reader, json={"from": "x"}), 403, "FORBIDDEN")
        body = {"unknowns": ["unk_x"]}
        assert_error(
            c.post("/v1/collections/staff/unknowns/persons", headers=reader, json=body), 403, "FORBIDDEN"
        )


def test_the_client_covers_every_correction(tmp_path: Path) -> None:
    app = fake_app(tmp_path)
    key = new_key(app, "admin")
    with thread_server(app) as url, facesearch.Client(url, key, timeout=30) as fs:
        fs.create_collection("staff", settings={"remember_unknown": True})
        alice = fs.create_person("staff", external_id="alice", images=[person_photo(*ALICE)])
        fs.create_person("staff", external_id="bob", images=[person_photo(*BOB)])
        neg = fs.add_negative("staff", "alice", person_photo(*ALICE, 9))
        assert [n["id"] for n in fs.list_negatives("staff", "alice")] == [neg["id"]]
        fs.delete_negative("staff", "alice", neg["id"])
        assert [p["external_id"] for p in fs.set_different("staff", "alice", "bob")] == ["bob"]
        assert [p["external_id"] for p in fs.list_different("staff", "bob")] == ["alice"]
        with pytest.raises(errors.Conflict):
            fs.merge_persons("staff", "alice", "bob")
        fs.unset_different("staff", "alice", "bob")
        merged = fs.merge_persons("staff", "alice", "bob")
        assert len(merged["faces"]) == 2 and merged["id"] == alice["id"]
        split = fs.split_person("staff", "alice", [merged["faces"][1]["id"]], external_id="bob2")
        assert split["external_id"] == "bob2"
        unknown = fs.identify("staff", person_photo(*STRANGER))["unknown_id"]
        clusters = fs.unknown_clusters("staff")
        assert clusters["clusters"][0]["members"] == [unknown]
        assert fs.unknown_image("staff", unknown)[:2] == b"\xff\xd8"
        named = fs.name_unknowns("staff", unknowns=[unknown], person="alice")
        assert named["faces_added"] == 1
        fs.identify("staff", person_photo(*STRANGER, 5, side=60), threshold=0.99)
        left = fs.unknown_clusters("staff")["clusters"]
        assert fs.forget_unknowns("staff", [c["id"] for c in left]) == len(left)
        with pytest.raises(errors.NotFound):
            fs.get_person("staff", "bob")
