"""The hot routes' answers are serialised by pydantic in one pass: the same JSON as FastAPI's own
encoding of the route's response model."""

from __future__ import annotations

import json

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from facesearch.api.errors import success, success_response


class Inner(BaseModel):
    similarity: float
    name: str | None
    groups: list[str]


class Outer(BaseModel):
    matches: list[Inner]
    threshold: float
    metadata: dict[str, object]
    created: str | None = None


def test_success_response_is_the_json_fastapi_would_write() -> None:
    model = Outer(
        matches=[
            Inner(similarity=0.987654321, name="Zoë «Ω»", groups=["a", "b"]),
            Inner(similarity=1e-7, name=None, groups=[]),
        ],
        threshold=0.4126,
        metadata={"office": "44th", "n": 3, "nested": {"x": [1, 2.5, None]}},
    )
    ours = success_response(model)
    theirs = JSONResponse(jsonable_encoder(success(model)))
    assert ours.media_type == "application/json"
    assert json.loads(ours.body) == json.loads(theirs.body)
    # Compact UTF-8 as FastAPI's; only float spelling may differ (1e-7 where Python writes 1e-07).
    assert b": " not in ours.body and "Zoë «Ω»".encode() in ours.body
    assert len(ours.body) <= len(theirs.body)
