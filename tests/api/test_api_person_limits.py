"""Metadata and group limits: checked before anything is written, so nothing stored fails to render.

Before: metadata nested 256 deep was committed and then answered 500, and from then on reading the
person, listing them and every search returning them answered 500 too (the JSON parser takes ~1,000
levels, the serialiser refuses more than 255). 24 MB of metadata and 20,000 groups were accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import assert_error, staff_client
from fastapi.testclient import TestClient

from facesearch.domain import GROUPS_MAX, METADATA_MAX_BYTES, METADATA_MAX_DEPTH, METADATA_MAX_KEYS
from fakes import person_photo

ALICE = (10, 20)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


@pytest.fixture
def client(tmp_path: Path, database_url: str | None) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """On SQLite and on PostgreSQL: no request answers an error after its transaction committed."""
    with staff_client(tmp_path, database_url) as pair:
        yield pair


BAD_METADATA = [
    nested(256),
    nested(METADATA_MAX_DEPTH + 1),
    {"blob": "x" * (METADATA_MAX_BYTES + 1)},
    {f"k{i}": i for i in range(METADATA_MAX_KEYS + 1)},
]


@pytest.mark.parametrize("metadata", BAD_METADATA, ids=["depth256", "depth17", "bytes", "keys"])
def test_bad_metadata_is_refused_everywhere_and_nothing_is_written(
    client: tuple[TestClient, dict[str, str]], metadata: dict[str, Any]
) -> None:
    c, h = client
    base = "/v1/collections/staff"
    # JSON body, multipart form with a photo, PATCH, enroll_if_unknown: each a VALIDATION_ERROR.
    err = assert_error(c.post(f"{base}/persons", headers=h, json={"external_id": "a", "metadata": metadata}),
                       422, "VALIDATION_ERROR")  # fmt: skip
    assert err["details"]["field"] == "metadata"
    files = {"images": ("a.png", person_photo(*ALICE), "image/png")}
    form = {"external_id": "b", "metadata": json.dumps(metadata)}
    assert_error(c.post(f"{base}/persons", headers=h, data=form, files=files), 422, "VALIDATION_ERROR")
    ok = c.post(f"{base}/persons", headers=h, json={"external_id": "carl"})
    assert ok.status_code == 201
    patch = c.patch(f"{base}/persons/{ok.json()['data']['id']}", headers=h, json={"metadata": metadata})
    assert_error(patch, 422, "VALIDATION_ERROR")
    probe = {"image": ("p.png", person_photo(*ALICE, 2), "image/png")}
    unknown = {"enroll_if_unknown": "true", "external_id": "d", "metadata": json.dumps(metadata)}
    assert_error(c.post(f"{base}/identify", headers=h, data=unknown, files=probe), 422, "VALIDATION_ERROR")
    # Nothing half-written: only carl exists, unchanged, and every read still answers.
    listed = c.get(f"{base}/persons", headers=h)
    assert listed.status_code == 200
    assert [p["external_id"] for p in listed.json()["data"]["persons"]] == ["carl"]
    assert listed.json()["data"]["persons"][0]["metadata"] == {}


def test_metadata_at_the_limits_is_kept_and_reads_back(client: tuple[TestClient, dict[str, str]]) -> None:
    c, h = client
    deep = nested(METADATA_MAX_DEPTH)
    made = c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "deep", "metadata": deep})
    assert made.status_code == 201, made.text
    got = c.get(f"/v1/collections/staff/persons/{made.json()['data']['id']}", headers=h)
    assert got.status_code == 200 and got.json()["data"]["metadata"] == deep


def test_group_count_is_limited(client: tuple[TestClient, dict[str, str]]) -> None:
    c, h = client
    too_many = [f"g{i}" for i in range(GROUPS_MAX + 1)]
    err = assert_error(
        c.post("/v1/collections/staff/persons", headers=h, json={"external_id": "x", "groups": too_many}),
        422,
        "VALIDATION_ERROR",
    )
    assert err["details"]["field"] == "groups"
    assert c.get("/v1/collections/staff/groups", headers=h).json()["data"]["groups"][1:] == []  # none made
    ok = c.post(
        "/v1/collections/staff/persons", headers=h, json={"external_id": "y", "groups": too_many[:-1]}
    )
    assert ok.status_code == 201 and len(ok.json()["data"]["groups"]) == GROUPS_MAX
    probe = {"image": ("p.png", person_photo(*ALICE, 2), "image/png")}
    search = c.post(
        "/v1/collections/staff/identify", headers=h, data={"groups": ",".join(too_many)}, files=probe
    )
    assert_error(search, 422, "VALIDATION_ERROR")
