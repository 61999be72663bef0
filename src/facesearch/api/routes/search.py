"""Search: identify (1:N), search over several collections, identify-all (N:N), detect, verify (1:1)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi import Path as FastAPIPath

from facesearch.api.deps import ImageBody, ImageRequest, ReadKey, ServiceDep, allowed_collection
from facesearch.api.errors import success_response
from facesearch.api.examples import COLLECTION_PATH_EXAMPLES, identify_all_example, identify_example
from facesearch.api.responses import (
    IMAGE_ERROR_RESPONSES,
    DetectOut,
    Envelope,
    IdentifyAllOut,
    IdentifyOut,
    VerifyOut,
)
from facesearch.api.schemas import (
    DetectParams,
    IdentifyAllParams,
    IdentifyParams,
    MultiSearchParams,
    VerifyParams,
)
from facesearch.api.security import Principal
from facesearch.errors import ValidationError
from facesearch.service import FaceSearch, SearchOptions
from facesearch.service.options import DetectOptions, IdentifyAllOptions, VerifyOptions

router = APIRouter(tags=["search"], responses=IMAGE_ERROR_RESPONSES)
CollectionPath = Annotated[
    str, FastAPIPath(description="collection id or name", openapi_examples=COLLECTION_PATH_EXAMPLES)
]

IDENTIFY_BODY = ImageBody(IdentifyParams, example=identify_example)
SEARCH_BODY = ImageBody(MultiSearchParams)
IDENTIFY_ALL_BODY = ImageBody(IdentifyAllParams, example=identify_all_example)
DETECT_BODY = ImageBody(DetectParams)
VERIFY_BODY = ImageBody(VerifyParams, images=("image_a", "image_b"), required=("image_a",))


def _identify(svc: FaceSearch, p: Principal, refs: list[str], body: ImageRequest[Any]) -> Response:
    options = body.params.to_options(SearchOptions)
    if options.enrols:
        p.require("write")  # enrolling from a search writes
    collections = [allowed_collection(svc, p, ref) for ref in refs]
    return success_response(IdentifyOut.of(svc.search(collections, body.image(), options)))


@router.post(
    "/collections/{collection}/identify",
    response_model=Envelope[IdentifyOut],
    summary="Who is this? (1:N)",
    openapi_extra=IDENTIFY_BODY.openapi,
)
def identify(
    collection: CollectionPath,
    p: ReadKey,
    svc: ServiceDep,
    body: Annotated[ImageRequest[IdentifyParams], Depends(IDENTIFY_BODY)],
) -> Response:
    """The best `top_k` persons for the photo's face (the central one, or `face=largest`), at or
    above `threshold` similarity. No match is `matches: []` with success true. `auto_enroll` and
    `enroll_if_unknown` need a writer key.
    The photo: multipart file `image`, or JSON `image_base64` (base64 or a data: URI) or `image_url`
    (when the server allows URL fetching); base64 wins when several are given."""
    return _identify(svc, p, [collection], body)


@router.post(
    "/search",
    response_model=Envelope[IdentifyOut],
    summary="Identify over several collections",
    openapi_extra=SEARCH_BODY.openapi,
)
def search(
    p: ReadKey, svc: ServiceDep, body: Annotated[ImageRequest[MultiSearchParams], Depends(SEARCH_BODY)]
) -> Response:
    """Identify over `collections` (a list, repeated form fields, or comma-separated) of one model
    pack; each match names its collection.
    The photo: multipart file `image`, or JSON `image_base64` (base64 or a data: URI) or `image_url`
    (when the server allows URL fetching); base64 wins when several are given."""
    return _identify(svc, p, body.params.collections, body)


@router.post(
    "/collections/{collection}/identify-all",
    response_model=Envelope[IdentifyAllOut],
    summary="Every face of a photo (N:N)",
    openapi_extra=IDENTIFY_ALL_BODY.openapi,
)
def identify_all(
    collection: CollectionPath,
    p: ReadKey,
    svc: ServiceDep,
    body: Annotated[ImageRequest[IdentifyAllParams], Depends(IDENTIFY_ALL_BODY)],
) -> Response:
    """Every face (up to `max_faces`, at least `min_face_size` pixels) with its matches and a
    base64 JPEG crop (`output_size` wide, `output_aspect` width/height); faces nobody matched are
    in `unrecognized`.
    The photo: multipart file `image`, or JSON `image_base64` (base64 or a data: URI) or `image_url`
    (when the server allows URL fetching); base64 wins when several are given."""
    options = body.params.to_options(IdentifyAllOptions)
    coll = allowed_collection(svc, p, collection)
    return success_response(IdentifyAllOut.of(svc.identify_all(coll, body.image(), options)))


@router.post(
    "/detect",
    response_model=Envelope[DetectOut],
    summary="Find faces",
    openapi_extra=DETECT_BODY.openapi,
)
def detect(
    p: ReadKey, svc: ServiceDep, body: Annotated[ImageRequest[DetectParams], Depends(DETECT_BODY)]
) -> Response:
    """Every face with its box, landmarks, detection score and quality (none: `faces: []`).
    The photo: multipart file `image`, or JSON `image_base64` (base64 or a data: URI) or `image_url`
    (when the server allows URL fetching); base64 wins when several are given."""
    started = time.perf_counter()
    found = svc.detect(body.image(), body.params.to_options(DetectOptions))
    return success_response(DetectOut.of(found, round((time.perf_counter() - started) * 1000, 2)))


@router.post(
    "/verify",
    response_model=Envelope[VerifyOut],
    summary="Same person? (1:1)",
    openapi_extra=VERIFY_BODY.openapi,
)
def verify(
    p: ReadKey, svc: ServiceDep, body: Annotated[ImageRequest[VerifyParams], Depends(VERIFY_BODY)]
) -> Response:
    """Compare two photos, `image_a` and `image_b` (multipart files, or JSON `image_a_base64` /
    `image_a_url` and `image_b_base64` / `image_b_url`), or one photo `image_a` with a `person`
    of a `collection` (their best enrolled face). Returns `similarity`, `distance` and `match`
    (similarity at or above `threshold`)."""
    q = body.params
    collection = None
    if q.collection is not None:
        collection = allowed_collection(svc, p, q.collection)
    elif q.person is not None:
        raise ValidationError("a person is looked up in a collection: name it", field="collection")
    result = svc.verify(
        body.image("image_a"),
        body.images.get("image_b"),
        q.to_options(VerifyOptions),
        collection=collection,
        person=q.person,
    )
    return success_response(VerifyOut.of(result))
