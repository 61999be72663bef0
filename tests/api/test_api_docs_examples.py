"""#20.7: the request examples of the OpenAPI document run as they are, in the order /docs shows
them: create the collection, create the person, identify and identify-all with the example photo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apihelpers import fake_app, new_key
from fastapi.testclient import TestClient

from embedworker import need_models
from facesearch.api.app import create_app
from facesearch.config import Settings


def _examples(doc: dict[str, Any]) -> dict[str, Any]:
    paths = doc["paths"]
    person = paths["/v1/collections/{collection}/persons"]["post"]
    identify = paths["/v1/collections/{collection}/identify"]["post"]
    identify_all = paths["/v1/collections/{collection}/identify-all"]["post"]
    collection_param = next(p for p in identify["parameters"] if p["name"] == "collection")
    return {
        "collection": doc["components"]["schemas"]["CollectionCreate"]["examples"][0],
        "path": collection_param["examples"]["staff"]["value"],
        "person": person["requestBody"]["content"]["application/json"]["example"],
        "identify": identify["requestBody"]["content"]["application/json"]["example"],
        "identify_all": identify_all["requestBody"]["content"]["application/json"]["example"],
    }


def test_the_document_has_the_examples(tmp_path: Path) -> None:
    ex = _examples(fake_app(tmp_path).openapi())
    assert ex["collection"]["name"] == ex["path"] == "staff"
    assert ex["person"]["external_id"] == "obama" and ex["person"]["images_base64"][0].startswith(
        "data:image/jpeg"
    )
    assert (
        ex["identify"]["image_base64"]
        == ex["identify_all"]["image_base64"]
        == ex["person"]["images_base64"][0]
    )


@pytest.mark.realmodel
def test_the_examples_run_as_they_are(tmp_path: Path) -> None:
    need_models()
    app = create_app(Settings(data_dir=tmp_path, workers=0, default_pack="onnx"))
    h = {"X-API-Key": new_key(app, "admin")}
    ex = _examples(app.openapi())
    with TestClient(app) as client:
        assert client.post("/v1/collections", json=ex["collection"], headers=h).status_code == 201
        made = client.post(f"/v1/collections/{ex['path']}/persons", json=ex["person"], headers=h)
        assert made.status_code == 201, made.text
        who = client.post(f"/v1/collections/{ex['path']}/identify", json=ex["identify"], headers=h)
        assert who.status_code == 200, who.text
        assert [m["external_id"] for m in who.json()["data"]["matches"]] == ["obama"]
        everyone = client.post(
            f"/v1/collections/{ex['path']}/identify-all", json=ex["identify_all"], headers=h
        )
        assert everyone.status_code == 200, everyone.text
        faces = everyone.json()["data"]["faces"]
        assert len(faces) == 1 and faces[0]["matches"][0]["external_id"] == "obama" and faces[0]["crop"]
