"""Walk the route table: every route needs a key; roles and collection limits are enforced."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import assert_error, fake_app, new_key, route_table
from fastapi.testclient import TestClient

from fakes import person_photo

OPEN = {("GET", "/v1/health")}
#: Every route of API.md (the walk fails when one is missing or an undocumented one appears).
DOCUMENTED = OPEN | {
    ("GET", "/v1/collections"),
    ("POST", "/v1/collections"),
    ("GET", "/v1/collections/{collection}"),
    ("PATCH", "/v1/collections/{collection}"),
    ("DELETE", "/v1/collections/{collection}"),
    ("POST", "/v1/collections/{collection}/persons"),
    ("GET", "/v1/collections/{collection}/persons"),
    ("GET", "/v1/collections/{collection}/persons/{person}"),
    ("PATCH", "/v1/collections/{collection}/persons/{person}"),
    ("DELETE", "/v1/collections/{collection}/persons/{person}"),
    ("POST", "/v1/collections/{collection}/persons/{person}/faces"),
    ("DELETE", "/v1/collections/{collection}/faces/{face}"),
    ("GET", "/v1/faces/{face}/image"),
    ("GET", "/v1/collections/{collection}/groups"),
    ("POST", "/v1/collections/{collection}/groups"),
    ("DELETE", "/v1/collections/{collection}/groups/{group}"),
    ("PUT", "/v1/collections/{collection}/groups/{group}/persons/{person}"),
    ("DELETE", "/v1/collections/{collection}/groups/{group}/persons/{person}"),
    ("POST", "/v1/collections/{collection}/identify"),
    ("POST", "/v1/collections/{collection}/identify-all"),
    ("POST", "/v1/search"),
    ("POST", "/v1/detect"),
    ("POST", "/v1/verify"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{key}"),
    ("POST", "/v1/collections/{collection}/persons/{person}/negatives"),
    ("GET", "/v1/collections/{collection}/persons/{person}/negatives"),
    ("DELETE", "/v1/collections/{collection}/persons/{person}/negatives/{negative}"),
    ("GET", "/v1/collections/{collection}/persons/{person}/negatives/{negative}/image"),
    ("POST", "/v1/collections/{collection}/persons/{person}/different"),
    ("GET", "/v1/collections/{collection}/persons/{person}/different"),
    ("DELETE", "/v1/collections/{collection}/persons/{person}/different/{other}"),
    ("POST", "/v1/collections/{collection}/persons/{person}/merge"),
    ("POST", "/v1/collections/{collection}/persons/{person}/split"),
    ("GET", "/v1/audit"),
    ("POST", "/v1/collections/{collection}/migrations"),
    ("GET", "/v1/collections/{collection}/migrations"),
    ("GET", "/v1/collections/{collection}/migrations/{migration}"),
    ("DELETE", "/v1/collections/{collection}/migrations/{migration}"),
    ("GET", "/v1/collections/{collection}/unknowns"),
    ("GET", "/v1/collections/{collection}/unknowns/clusters"),
    ("GET", "/v1/collections/{collection}/unknowns/{unknown}/image"),
    ("POST", "/v1/collections/{collection}/unknowns/persons"),
    ("POST", "/v1/collections/{collection}/unknowns/forget"),
}
READER_POSTS = {
    "/v1/collections/{collection}/identify",
    "/v1/collections/{collection}/identify-all",
    "/v1/search",
    "/v1/detect",
    "/v1/verify",
}
ADMIN_ONLY = {
    ("POST", "/v1/collections"),
    ("PATCH", "/v1/collections/{collection}"),
    ("DELETE", "/v1/collections/{collection}"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{key}"),
    ("POST", "/v1/collections/{collection}/migrations"),
    ("DELETE", "/v1/collections/{collection}/migrations/{migration}"),
}
DUMMY = {
    "collection": "col_dummy",
    "person": "per_dummy",
    "face": "fac_dummy",
    "group": "grp_dummy",
    "key": "key_x",
    "negative": "neg_dummy",
    "other": "per_other",
    "unknown": "unk_dummy",
    "migration": "mig_dummy",
}


def fill(path: str, values: dict[str, str] = DUMMY) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def is_read(method: str, path: str) -> bool:
    return (method == "GET" and path != "/v1/keys") or (method == "POST" and path in READER_POSTS)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    app = fake_app(tmp_path)
    svc = app.state.service
    for name, colour in (("staff", (10, 20)), ("secret", (30, 40))):
        svc.create_collection(name)
        svc.create_person(name, external_id=f"{name}-1", images=[person_photo(*colour)])
    keys = {role: new_key(app, role) for role in ("reader", "writer", "admin")}
    svc.create_collection("gone")
    keys["limited"] = new_key(app, "reader", ["staff", "gone"])
    svc.delete_collection("gone")  # the key keeps the id of a collection that is no more
    keys["limited_admin"] = new_key(app, "admin", ["staff"])
    with TestClient(app) as client:
        yield {"app": app, "client": client, "keys": keys, "svc": svc}


def call(client: TestClient, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    headers = {"X-API-Key": key} if key else {}
    return client.request(method, path, headers=headers, **kw)


def test_route_table_is_the_documented_one(env: dict[str, Any]) -> None:
    routes = set(route_table(env["app"]))
    assert routes == DOCUMENTED


def test_every_route_but_health_needs_a_valid_key(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    failures = []
    walked = 0
    for method, path in route_table(env["app"]):
        if (method, path) in OPEN:
            continue
        walked += 1
        url = fill(path)
        for headers, code in (
            ({}, "API_KEY_MISSING"),
            ({"X-API-Key": "fs_not_a_real_key_at_all_000000000000"}, "API_KEY_INVALID"),
            ({"Authorization": "Bearer fs_not_a_real_key_either_0000000000"}, "API_KEY_INVALID"),
        ):
            r = client.request(method, url, headers=headers)
            if r.status_code != 401 or r.json()["error"]["code"] != code:
                failures.append((method, path, headers, r.status_code, r.text[:200]))
    assert walked == len(DOCUMENTED) - len(OPEN)
    assert not failures, failures


def test_open_routes(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    health = client.get("/v1/health").json()["data"]
    assert health["status"] == "ok" and health["model_pack"] == "fake"
    assert health["counts"] == {"collections": 2, "faces": 2, "negatives": 0, "unknown_faces": 0}
    assert health["index_backend"]
    assert client.get("/openapi.json").json()["info"]["title"] == "facesearch"
    assert client.get("/docs").status_code == 200


def test_reader_is_forbidden_on_every_write_and_writer_on_admin_routes(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    keys = env["keys"]
    failures = []
    writes = [(m, p) for m, p in route_table(env["app"]) if not is_read(m, p)]
    assert len(writes) == 25  # 15, 8 of corrections and unknown faces, 2 of migrations
    for method, path in writes:
        r = call(client, method, fill(path), keys["reader"])
        if r.status_code != 403 or r.json()["error"]["code"] != "FORBIDDEN":
            failures.append(("reader", method, path, r.status_code))
        if (method, path) in ADMIN_ONLY:
            r = call(client, method, fill(path), keys["writer"])
            if r.status_code != 403 or r.json()["error"]["code"] != "FORBIDDEN":
                failures.append(("writer", method, path, r.status_code))
    assert not failures, failures


def test_roles_allow_their_own_work(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    keys = env["keys"]
    photo = {"image": ("p.png", person_photo(10, 20, 1), "image/png")}
    r = call(client, "POST", "/v1/collections/staff/identify", keys["reader"], files=photo)
    assert r.status_code == 200 and r.json()["data"]["matches"][0]["external_id"] == "staff-1"
    assert call(client, "GET", "/v1/collections/staff/persons", keys["reader"]).status_code == 200
    r = call(client, "POST", "/v1/collections/staff/persons", keys["writer"], json={"external_id": "w"})
    assert r.status_code == 201
    assert call(client, "POST", "/v1/collections", keys["writer"], json={"name": "x"}).status_code == 403
    assert call(client, "POST", "/v1/collections", keys["admin"], json={"name": "x"}).status_code == 201
    r = client.get("/v1/collections", headers={"Authorization": f"Bearer {keys['reader']}"})
    assert r.status_code == 200


def test_enrolling_from_a_search_needs_a_writer(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    photo = {"image": ("p.png", person_photo(90, 90), "image/png")}
    for flag in ("enroll_if_unknown", "auto_enroll"):
        r = call(
            client,
            "POST",
            "/v1/collections/staff/identify",
            env["keys"]["reader"],
            files=photo,
            data={flag: "true"},
        )
        assert_error(r, 403, "FORBIDDEN")
    r = call(
        client,
        "POST",
        "/v1/collections/staff/identify",
        env["keys"]["writer"],
        files=photo,
        data={"enroll_if_unknown": "true", "external_id": "new"},
    )
    assert r.status_code == 200 and r.json()["data"]["created_person_id"].startswith("per_")


def test_collection_limited_key(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    svc = env["svc"]
    key = env["keys"]["limited"]
    listed = call(client, "GET", "/v1/collections", key).json()["data"]["collections"]
    assert [c["name"] for c in listed] == ["staff"]
    secret = svc.get_collection("secret")
    secret_person = svc.list_persons("secret")[0][0]
    secret_face = svc.get_person("secret", secret_person.id).faces[0]
    photo = {"image": ("p.png", person_photo(30, 40, 1), "image/png")}
    forbidden = [
        ("GET", "/v1/collections/secret", {}),
        ("GET", f"/v1/collections/{secret.id}", {}),
        ("GET", "/v1/collections/no-such-collection", {}),  # not in its list: FORBIDDEN, not NOT_FOUND
        ("GET", "/v1/collections/secret/persons", {}),
        ("GET", f"/v1/collections/secret/persons/{secret_person.id}", {}),
        ("GET", "/v1/collections/secret/groups", {}),
        ("GET", f"/v1/faces/{secret_face.id}/image", {}),
        ("GET", f"/v1/faces/{secret_face.id}/image?format=base64", {}),
        ("POST", "/v1/collections/secret/identify", {"files": photo}),
        ("POST", "/v1/collections/secret/identify-all", {"files": photo}),
        ("POST", "/v1/search", {"files": photo, "data": {"collections": "staff,secret"}}),
        (
            "POST",
            "/v1/verify",
            {
                "files": {"image_a": photo["image"]},
                "data": {"collection": "secret", "person": secret_person.id},
            },
        ),
    ]
    for method, url, kw in forbidden:
        assert_error(call(client, method, url, key, **kw), 403, "FORBIDDEN")
    # Its own collections work; one of its own, since deleted, is NOT_FOUND by its id and
    # FORBIDDEN by its old name (a name binds nothing).
    assert call(client, "GET", "/v1/collections/staff", key).status_code == 200
    assert call(client, "POST", "/v1/collections/staff/identify", key, files=photo).status_code == 200
    bound = [uid for k in svc.store.list_api_keys() if k.collections for uid in k.collections]
    gone_id = next(uid for uid in bound if uid not in {c.id for c in svc.list_collections()})
    assert_error(call(client, "GET", f"/v1/collections/{gone_id}", key), 404, "NOT_FOUND")
    assert_error(call(client, "GET", "/v1/collections/gone", key), 403, "FORBIDDEN")
    staff_face = svc.list_persons("staff")[0][0]
    face_id = svc.get_person("staff", staff_face.id).faces[0].id
    r = call(client, "GET", f"/v1/faces/{face_id}/image", key)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"


def test_limited_admin_cannot_escape_its_collections(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    key = env["keys"]["limited_admin"]
    assert_error(call(client, "POST", "/v1/keys", key, json={"name": "x", "role": "admin"}), 403, "FORBIDDEN")
    assert_error(call(client, "GET", "/v1/keys", key), 403, "FORBIDDEN")
    assert_error(call(client, "POST", "/v1/collections", key, json={"name": "other"}), 403, "FORBIDDEN")
    assert_error(call(client, "DELETE", "/v1/collections/secret", key), 403, "FORBIDDEN")
    # Renaming its own collection is allowed: the key is bound to the id and keeps reaching it.
    r = call(client, "PATCH", "/v1/collections/staff", key, json={"name": "renamed"})
    assert r.status_code == 200
    assert call(client, "GET", "/v1/collections/renamed", key).status_code == 200


def test_keys_bind_to_collection_ids_not_names(env: dict[str, Any]) -> None:
    """#15.6: a key limited to 'staff' must not reach a new collection that takes the old name."""
    client: TestClient = env["client"]
    admin, limited = env["keys"]["admin"], env["keys"]["limited"]
    svc = env["svc"]
    staff_id = svc.collection("staff").id
    assert (
        call(client, "PATCH", "/v1/collections/staff", admin, json={"name": "staff-2025"}).status_code == 200
    )
    assert call(client, "POST", "/v1/collections", admin, json={"name": "staff"}).status_code == 201
    svc.create_person("staff", external_id="newcomer", images=[person_photo(50, 60)])
    # The new 'staff' is someone else's: the limited key cannot read it or its persons.
    assert_error(call(client, "GET", "/v1/collections/staff", limited), 403, "FORBIDDEN")
    assert_error(call(client, "GET", "/v1/collections/staff/persons", limited), 403, "FORBIDDEN")
    # The renamed collection is still its own, by new name and by id.
    for ref in ("staff-2025", staff_id):
        r = call(client, "GET", f"/v1/collections/{ref}/persons", limited)
        assert r.status_code == 200 and [p["external_id"] for p in r.json()["data"]["persons"]] == ["staff-1"]
    listed = [
        c["name"] for c in call(client, "GET", "/v1/collections", limited).json()["data"]["collections"]
    ]
    assert listed == ["staff-2025"]
    # The key listing shows what each key reaches, by id and current name.
    keys = call(client, "GET", "/v1/keys", admin).json()["data"]["keys"]
    reach = {k["prefix"]: k["collections"] for k in keys}
    assert reach[limited[:8]] == [{"id": staff_id, "name": "staff-2025"}]
    assert reach[env["keys"]["reader"][:8]] is None


def test_a_key_cannot_be_limited_to_a_collection_that_does_not_exist(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    admin = env["keys"]["admin"]
    body = {"name": "cam", "role": "reader", "collections": ["staff", "nope"]}
    assert_error(call(client, "POST", "/v1/keys", admin, json=body), 404, "NOT_FOUND")
    body["collections"] = []
    assert_error(call(client, "POST", "/v1/keys", admin, json=body), 422, "VALIDATION_ERROR")
    assert call(client, "GET", "/v1/keys", admin).json()["data"]["keys"][-1]["name"] != "cam"


def test_keys_over_http(env: dict[str, Any]) -> None:
    client: TestClient = env["client"]
    admin = env["keys"]["admin"]
    r = call(
        client, "POST", "/v1/keys", admin, json={"name": "cam", "role": "reader", "collections": ["staff"]}
    )
    assert r.status_code == 201
    created = r.json()["data"]
    assert created["key"].startswith("fs_") and created["id"].startswith("key_")
    staff_id = env["svc"].collection("staff").id
    assert created["collections"] == [{"id": staff_id, "name": "staff"}] and created["role"] == "reader"
    assert call(client, "GET", "/v1/collections/staff", created["key"]).status_code == 200
    listing = call(client, "GET", "/v1/keys", admin)
    assert created["key"] not in listing.text
    assert created["id"] in [k["id"] for k in listing.json()["data"]["keys"]]
    page = call(client, "GET", "/v1/keys?limit=2", admin).json()["data"]
    assert len(page["keys"]) == 2 and page["next_cursor"]
    r = call(client, "DELETE", f"/v1/keys/{created['id']}", admin)
    assert r.status_code == 200 and r.json()["data"]["revoked_at"]
    assert_error(call(client, "GET", "/v1/collections/staff", created["key"]), 401, "API_KEY_INVALID")
    assert_error(call(client, "DELETE", "/v1/keys/key_nope", admin), 404, "NOT_FOUND")
    bad = call(client, "POST", "/v1/keys", admin, json={"name": "x", "role": "root"})
    assert_error(bad, 422, "VALIDATION_ERROR")
