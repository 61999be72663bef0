"""`max_false_positive_rate` over HTTP: identify, search and identify-all turn it into a threshold."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from apihelpers import assert_error, new_key
from fastapi.testclient import TestClient

from facesearch.api.app import create_app
from facesearch.config import Settings
from facesearch.eval.calibration import CalibrationTable, fit_calibration
from facesearch.service import FaceSearch
from facesearch.service.searcher import FMR_FLOOR
from fakes import fake_pack, person_photo

ALICE = (10, 20)


@pytest.fixture(scope="module")
def table() -> CalibrationTable:
    rng = np.random.default_rng(5)
    return fit_calibration(rng.normal(1.41, 0.06, 100_000), rng.uniform(0.0, 0.5, 2_000))


@pytest.fixture
def client(tmp_path: Path, table: CalibrationTable) -> Iterator[tuple[TestClient, str]]:
    pack = dataclasses.replace(
        fake_pack("calfake"),
        similarity=table.similarity,
        distance_for_similarity=table.distance_for_similarity,
        default_threshold=1 / 3,
        calibration=table,
    )
    svc = FaceSearch(Settings(data_dir=tmp_path, default_pack="calfake", workers=0), packs={"calfake": pack})
    svc.create_collection("small")
    svc.create_person("small", external_id="alice", images=[person_photo(*ALICE)])
    svc.create_collection("big")
    svc.create_person("big", external_id="alice", images=[person_photo(*ALICE)])
    for i in range(60):
        svc.create_person("big", external_id=f"p{i}", images=[person_photo(100 + i // 30, i % 30 + 100)])
    app = create_app(service=svc)
    key = new_key(app, "reader")
    with TestClient(app) as c:
        yield c, key


def post(c: TestClient, key: str, path: str, **data: Any) -> Any:
    files = {"image": ("probe.png", person_photo(*ALICE, 2), "image/png")}
    return c.post(path, headers={"X-API-Key": key}, files=files, data=data)


def test_rate_becomes_a_stricter_threshold_for_a_bigger_gallery(
    client: tuple[TestClient, str], table: CalibrationTable
) -> None:
    c, key = client
    small = post(c, key, "/v1/collections/small/identify", max_false_positive_rate="0.01").json()["data"]
    big = post(c, key, "/v1/collections/big/identify", max_false_positive_rate="0.01").json()["data"]
    assert small["threshold"] == pytest.approx(table.threshold_for_gallery(0.01, 1))
    assert big["threshold"] == pytest.approx(table.threshold_for_gallery(0.01, 61))
    assert big["threshold"] > small["threshold"]
    assert [m["external_id"] for m in big["matches"]] == ["alice"]
    both = post(c, key, "/v1/search", collections="small,big", max_false_positive_rate="0.01").json()["data"]
    assert both["threshold"] == pytest.approx(table.threshold_for_gallery(0.01, 62))
    every = post(c, key, "/v1/collections/big/identify-all", max_false_positive_rate="0.01").json()["data"]
    assert every["threshold"] == pytest.approx(big["threshold"])
    assert [f["matches"][0]["external_id"] for f in every["faces"]] == ["alice"]


def test_rate_and_threshold_together_or_out_of_range_are_refused(client: tuple[TestClient, str]) -> None:
    c, key = client
    path = "/v1/collections/big/identify"
    err = assert_error(
        post(c, key, path, max_false_positive_rate="0.01", threshold="0.5"), 422, "VALIDATION_ERROR"
    )
    assert "max_false_positive_rate" in str(err)
    for bad in ("0", "1", "-0.1", "lots"):
        assert_error(post(c, key, path, max_false_positive_rate=bad), 422, "VALIDATION_ERROR")


def test_default_is_the_collections_rate_and_matches_state_their_odds(
    client: tuple[TestClient, str], table: CalibrationTable
) -> None:
    c, key = client
    got = post(c, key, "/v1/collections/big/identify").json()["data"]
    assert got["threshold_rule"] == {"kind": "max_false_positive_rate", "value": 0.01, "set_by": "collection"}
    assert got["threshold"] == pytest.approx(table.threshold_for_gallery(0.01, 61))
    (alice,) = got["matches"]
    assert alice["false_match_rate"] == pytest.approx(max(table.fmr(alice["distance"]), FMR_FLOOR), rel=2e-3)
    assert alice["expected_false_matches"] == pytest.approx(alice["false_match_rate"] * 61, rel=2e-3)
    every = post(c, key, "/v1/collections/big/identify-all").json()["data"]
    assert every["threshold_rule"] == got["threshold_rule"]
    asked = post(c, key, "/v1/collections/big/identify", threshold="0.2").json()["data"]
    assert asked["threshold_rule"] == {"kind": "threshold", "value": 0.2, "set_by": "request"}


def test_collection_rate_setting_is_validated(client: tuple[TestClient, str]) -> None:
    c, _ = client
    admin = new_key(c.app, "admin")  # type: ignore[arg-type]
    for bad in (0, 1, -0.5, "x"):
        r = c.patch(
            "/v1/collections/big",
            headers={"X-API-Key": admin},
            json={"settings": {"max_false_positive_rate": bad}},
        )
        assert_error(r, 422, "VALIDATION_ERROR")
    r = c.patch(
        "/v1/collections/big",
        headers={"X-API-Key": admin},
        json={"settings": {"max_false_positive_rate": 0.001}},
    )
    assert r.status_code == 200 and r.json()["data"]["settings"]["max_false_positive_rate"] == 0.001
    got = post(c, new_key(c.app, "reader"), "/v1/collections/big/identify").json()["data"]  # type: ignore[arg-type]
    assert got["threshold_rule"]["value"] == 0.001
