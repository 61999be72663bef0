"""A person is addressed by id or by external id wherever a route names one (#20 point 2)."""

from __future__ import annotations

from pathlib import Path

from apihelpers import assert_error, fake_app, new_key
from fastapi.testclient import TestClient

from fakes import person_photo


def test_routes_take_the_external_id(tmp_path: Path) -> None:
    app = fake_app(tmp_path)
    with TestClient(app) as c:
        h = {"X-API-Key": new_key(app, "admin")}
        c.post("/v1/collections", headers=h, json={"name": "staff"})
        c.post("/v1/collections", headers=h, json={"name": "other"})
        obama = c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "obama"}).json()[
            "data"
        ]
        base = "/v1/collections/staff/persons"
        assert c.get(f"{base}/obama", headers=h).json()["data"]["id"] == obama["id"]
        assert c.patch(f"{base}/obama", headers=h, json={"name": "Barack"}).json()["data"]["name"] == "Barack"
        files = {"image": ("o.png", person_photo(10, 20), "image/png")}
        assert c.post(f"{base}/obama/faces", headers=h, files=files).status_code == 201
        put = c.put("/v1/collections/staff/groups/vip/persons/obama", headers=h)
        assert put.status_code == 200 and put.json()["data"]["groups"] == ["vip"]
        # Another collection's external id is not this one's person.
        assert_error(c.get("/v1/collections/other/persons/obama", headers=h), 404, "NOT_FOUND")
        gone = c.delete(f"{base}/obama", headers=h)
        assert gone.status_code == 200 and gone.json()["data"] == {"id": obama["id"], "deleted": True}
        assert_error(c.get(f"{base}/{obama['id']}", headers=h), 404, "NOT_FOUND")
