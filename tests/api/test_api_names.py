"""Names, external ids and group names: trimmed, no control or text-direction characters, and
group names without commas (lists of names are comma-separated) (#15 point 10)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelpers import assert_error, staff_client
from fastapi.testclient import TestClient


@pytest.fixture
def client(tmp_path: Path, database_url: str | None) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """On SQLite and on PostgreSQL."""
    with staff_client(tmp_path, database_url) as pair:
        yield pair


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Eve\u202eevil"),  # right-to-left override
        ("name", "Eve\u2066x\u2069"),  # isolates
        ("name", "nul\x00byte"),
        ("name", "line\nbreak"),
        ("external_id", "id\x07bell"),
        ("external_id", "id\u200fmark"),
    ],
)
def test_control_and_bidi_characters_are_refused(
    client: tuple[TestClient, dict[str, str]], field: str, value: str
) -> None:
    c, h = client
    err = assert_error(
        c.post("/v1/collections/staff/persons", headers=h, json={field: value}), 422, "VALIDATION_ERROR"
    )
    assert err["details"]["field"] == field
    assert c.get("/v1/collections/staff/persons", headers=h).json()["data"]["persons"] == []


def test_groups_refuse_commas_and_control_characters(client: tuple[TestClient, dict[str, str]]) -> None:
    c, h = client
    for bad in ("a,b", "tab\there", "x\u202e"):
        assert_error(
            c.post("/v1/collections/staff/groups", headers=h, json={"name": bad}), 422, "VALIDATION_ERROR"
        )
        r = c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "p", "groups": [bad]})
        assert r.status_code == 422, r.text
    assert [g["name"] for g in c.get("/v1/collections/staff/groups", headers=h).json()["data"]["groups"]] == [
        "default"
    ]


def test_names_are_trimmed(client: tuple[TestClient, dict[str, str]]) -> None:
    c, h = client
    made = c.post(
        "/v1/collections/staff/persons",
        headers=h,
        json={"external_id": "  alice ", "name": " Alice Liddell  ", "groups": [" readers "]},
    )
    assert made.status_code == 201, made.text
    p = made.json()["data"]
    assert (p["external_id"], p["name"], p["groups"]) == ("alice", "Alice Liddell", ["readers"])
    again = c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "alice"})
    assert_error(again, 409, "CONFLICT")  # the trimmed id is the one that is taken
    renamed = c.patch(f"/v1/collections/staff/persons/{p['id']}", headers=h, json={"name": "  Alice  "})
    assert renamed.json()["data"]["name"] == "Alice"
