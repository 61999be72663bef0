"""Request examples for the OpenAPI document, runnable from /docs as they are, in this order:
create the collection `staff`, create the person `obama` with the example photo, then identify
and identify-all with the same photo (one match: obama).

The photo is a 240x240 crop of `people/obama/obama.jpg` from the shared test photos (the MIT-licensed
face_recognition project's examples; the portrait itself is an official US government photo, in
the public domain), shipped as `example-face.jpg` beside this module.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path
from typing import Any

EXAMPLE_FACE = Path(__file__).with_name("example-face.jpg")
EXAMPLE_COLLECTION = "staff"


@cache
def example_photo() -> str:
    """The example photo as a data: URI."""
    return "data:image/jpeg;base64," + base64.b64encode(EXAMPLE_FACE.read_bytes()).decode("ascii")


def collection_example() -> dict[str, Any]:
    return {"name": EXAMPLE_COLLECTION, "title": "Staff", "settings": {"max_false_positive_rate": 0.01}}


def person_example() -> dict[str, Any]:
    return {
        "external_id": "obama",
        "name": "Barack Obama",
        "metadata": {"office": "44th president"},
        "groups": ["presidents"],
        "images_base64": [example_photo()],
    }


def identify_example() -> dict[str, Any]:
    return {"image_base64": example_photo(), "top_k": 3}


def identify_all_example() -> dict[str, Any]:
    return {"image_base64": example_photo(), "output_size": 96}


#: The path parameter's example (Swagger UI fills it in).
COLLECTION_PATH_EXAMPLES = {"staff": {"summary": "the example collection", "value": EXAMPLE_COLLECTION}}
