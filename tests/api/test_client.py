"""facesearch.Client against a live uvicorn (in a thread) over the fake pack: every method, typed errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from apihelpers import fake_app, new_key, thread_server

import facesearch
from facesearch import errors
from facesearch.api.errors import STATUS_BY_CODE
from facesearch.client import error_class
from fakes import face_photo, person_photo
from milvusutil import emptied_after
from pgutil import fresh_schema, need_postgres

ALICE, BOB = (10, 20), (30, 40)


@pytest.fixture(
    scope="module", params=["sqlite", "postgresql", pytest.param("pg+milvus", marks=pytest.mark.milvus)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """Every route through the client, on SQLite, on PostgreSQL, and on PostgreSQL with Milvus."""
    with ExitStack() as stack:
        extra = {}
        if request.param != "sqlite":
            extra["database_url"] = stack.enter_context(fresh_schema(need_postgres()))
        if request.param == "pg+milvus":
            milvus = request.getfixturevalue("milvus_session_url")
            extra["index_url"] = stack.enter_context(emptied_after(milvus))
        app = fake_app(tmp_path_factory.mktemp("client"), **extra)
        keys = {role: new_key(app, role) for role in ("reader", "writer", "admin")}
        with thread_server(app) as url:
            yield url, keys


@pytest.fixture
def fs(server: tuple[str, dict[str, str]]) -> Iterator[facesearch.Client]:
    url, keys = server
    with facesearch.Client(url, keys["admin"], timeout=30) as client:
        yield client


def test_every_error_code_has_its_class() -> None:
    for code in STATUS_BY_CODE:
        cls = error_class(code)
        assert cls.code == code or cls is errors.FaceSearchError
    assert error_class("NOT_FOUND") is errors.NotFound
    assert error_class("FACE_NOT_DETECTED") is errors.NoFaceDetected
    assert error_class("SOMETHING_NEW") is errors.FaceSearchError


def test_collections_persons_faces_groups(fs: facesearch.Client, tmp_path: Path) -> None:
    assert fs.health()["status"] == "ok"
    coll = fs.create_collection("staff", title="Staff", settings={"default_threshold": 0.6})
    assert coll["id"].startswith("col_") and coll["settings"]["default_threshold"] == 0.6
    assert fs.get_collection(coll["id"])["name"] == "staff"
    assert fs.update_collection("staff", title="All staff")["title"] == "All staff"
    assert "staff" in [c["name"] for c in fs.list_collections()["collections"]]

    photo = tmp_path / "alice.png"
    photo.write_bytes(person_photo(*ALICE, 3))
    alice = fs.create_person(
        "staff",
        external_id="alice",
        name="Alice",
        metadata={"desk": 7},
        groups=["vip", "night"],
        images=[person_photo(*ALICE), photo],  # bytes and a path
    )
    assert (
        alice["groups"] == ["night", "vip"] and len(alice["faces"]) == 2 and alice["metadata"] == {"desk": 7}
    )
    bob = fs.create_person("staff", external_id="bob", name="Bob")  # no photo: JSON body
    assert bob["faces"] == [] and bob["groups"] == ["default"]

    face = fs.add_face("staff", bob["id"], person_photo(*BOB))
    assert face["person_id"] == bob["id"] and face["thumbnail_url"] == f"/v1/faces/{face['id']}/image"
    jpeg = fs.face_image(face["id"])
    assert isinstance(jpeg, bytes) and jpeg[:3] == b"\xff\xd8\xff"
    as_b64 = fs.face_image(face["id"], format="base64")
    assert base64.b64decode(as_b64["file_base64"]) == jpeg and as_b64["file_type"] == "image/jpeg"

    assert fs.get_person("staff", alice["id"])["external_id"] == "alice"
    page = fs.list_persons("staff", limit=1)
    assert len(page["persons"]) == 1 and page["next_cursor"]
    assert fs.list_persons("staff", cursor=page["next_cursor"])["persons"][0]["id"] == bob["id"]
    assert [p["id"] for p in fs.list_persons("staff", group="vip")["persons"]] == [alice["id"]]
    assert fs.list_persons("staff", name_prefix="bo")["persons"][0]["id"] == bob["id"]
    assert fs.list_persons("staff", external_id="alice")["persons"][0]["id"] == alice["id"]
    assert fs.update_person("staff", bob["id"], name="Robert", metadata={"a": 1})["name"] == "Robert"

    fs.create_group("staff", "guards")
    assert fs.add_member("staff", "guards", bob["id"])["groups"] == ["guards"]
    counts = {g["name"]: g["person_count"] for g in fs.list_groups("staff")["groups"]}
    assert counts == {"default": 0, "guards": 1, "night": 1, "vip": 1}
    assert fs.remove_member("staff", "guards", bob["id"])["groups"] == ["default"]
    assert fs.delete_group("staff", "guards")["deleted"] is True

    fs.delete_face("staff", face["id"])
    with pytest.raises(errors.NotFound) as info:
        fs.face_image(face["id"])
    assert info.value.details["status"] == 404 and info.value.code == "NOT_FOUND"
    fs.delete_person("staff", bob["id"])
    with pytest.raises(errors.NotFound):
        fs.get_person("staff", bob["id"])


def test_search_routes(fs: facesearch.Client) -> None:
    fs.create_collection("day")
    fs.create_collection("night")
    fs.create_person("day", external_id="alice", images=[person_photo(*ALICE)], groups=["a"])
    fs.create_person("night", external_id="bob", images=[person_photo(*BOB)])

    found = fs.identify("day", person_photo(*ALICE, 1), top_k=3, threshold=0.3, return_thumbnails=True)
    best = found["matches"][0]
    assert best["external_id"] == "alice" and best["collection"] == "day" and best["thumbnail"]
    assert set(found["timings"]) == {"decode_ms", "detect_ms", "embed_ms", "search_ms"}
    assert found["searched"] == 1 and found["query_time_ms"] > 0 and found["face"]["box"]["width"] == 100
    assert fs.identify("day", person_photo(*BOB))["matches"] == []
    assert fs.identify("day", person_photo(*ALICE), groups=["b"])["matches"] == []

    both = fs.search(["day", "night"], person_photo(*BOB, 2))
    assert [(m["external_id"], m["collection"]) for m in both["matches"]] == [("bob", "night")]
    assert both["searched"] == 2

    group = face_photo(((*ALICE, 0), 20, 20, 90), ((*BOB, 0), 250, 120, 90), ((90, 90, 0), 150, 200, 60))
    everyone = fs.identify_all("day", group, output_size=64)
    assert [f["matches"][0]["external_id"] for f in everyone["faces"]] == ["alice"]
    assert len(everyone["unrecognized"]) == 2 and everyone["faces"][0]["crop"]
    assert everyone["smallest_face_size"] == 32  # how finely the photo was scanned

    assert len(fs.detect(group)["faces"]) == 3
    assert fs.detect(face_photo())["faces"] == []
    assert fs.detect(face_photo(), min_face_size=48)["smallest_face_size"] == 48

    same = fs.verify(person_photo(*ALICE, 1), person_photo(*ALICE, 2))
    assert same["match"] is True and same["similarity"] > 0.9 and same["searched"] == 1
    alice = fs.list_persons("day", external_id="alice")["persons"][0]
    other = fs.verify(person_photo(*BOB), collection="day", person=alice["id"])
    assert other["match"] is False

    with pytest.raises(errors.NoFaceDetected) as info:
        fs.identify("day", face_photo())
    assert info.value.details["status"] == 422
    with pytest.raises(errors.ValidationError) as bad:
        fs.identify("day", person_photo(*ALICE), top_k=0)
    assert bad.value.details["field"] == "top_k"
    with pytest.raises(errors.ImageDecodeError):
        fs.detect(b"not an image")


def test_keys_and_roles(
    fs: facesearch.Client, server: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, keys = server
    monkeypatch.delenv("FACESEARCH_API_KEY", raising=False)
    fs.create_collection("keyed")
    created = fs.create_key("door camera", "reader", collections=["keyed"])
    assert created["key"].startswith("fs_")
    assert created["id"] in [k["id"] for k in fs.list_keys()["keys"]]
    with facesearch.Client(url, created["key"]) as camera:
        assert [c["name"] for c in camera.list_collections()["collections"]] == ["keyed"]
        with pytest.raises(errors.Forbidden):
            camera.create_person("keyed", external_id="x")
        with pytest.raises(errors.Forbidden):
            camera.get_collection("day-not-mine")
    fs.revoke_key(created["id"])
    with facesearch.Client(url, created["key"]) as camera, pytest.raises(errors.ApiKeyInvalid) as info:
        camera.list_collections()
    assert info.value.details["status"] == 401
    with facesearch.Client(url, None) as anonymous, pytest.raises(errors.ApiKeyMissing):
        anonymous.list_collections()
    with facesearch.Client(url, keys["reader"]) as reader, pytest.raises(errors.Forbidden):
        reader.create_collection("nope")
    with pytest.raises(errors.Conflict):
        fs.create_collection("keyed")
