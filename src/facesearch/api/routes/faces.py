"""Faces: add one to a person, delete one, download a face's thumbnail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from facesearch.api.deps import (
    ImageBody,
    ImageRequest,
    ReadKey,
    ServiceDep,
    WriteKey,
    allowed_collection,
)
from facesearch.api.errors import success
from facesearch.api.responses import (
    ERROR_RESPONSES,
    IMAGE_ERROR_RESPONSES,
    Deleted,
    Envelope,
    FaceImageOut,
    FaceOut,
)
from facesearch.api.schemas import AddFaceParams
from facesearch.service import EnrolOptions

router = APIRouter(tags=["faces"])

FACE_BODY = ImageBody(AddFaceParams)


@router.post(
    "/collections/{collection}/persons/{person}/faces",
    status_code=201,
    response_model=Envelope[FaceOut],
    responses=IMAGE_ERROR_RESPONSES,
    summary="Add a face to a person",
    openapi_extra=FACE_BODY.openapi,
)
def add_face(
    collection: str,
    person: str,
    p: WriteKey,
    svc: ServiceDep,
    body: Annotated[ImageRequest[AddFaceParams], Depends(FACE_BODY)],
) -> dict[str, Any]:
    """Enrol one more photo of a person: multipart file `image`, or JSON `image_base64` / `image_url`.
    The face nearest the centre is used (or the largest, with `face=largest`). Returns the face
    with its box, quality and `thumbnail_url`."""
    coll = allowed_collection(svc, p, collection)
    return success(FaceOut.of(svc.add_face(coll, person, body.image(), body.params.to_options(EnrolOptions))))


@router.delete(
    "/collections/{collection}/faces/{face}",
    response_model=Envelope[Deleted],
    responses=ERROR_RESPONSES,
    summary="Delete a face",
)
def delete_face(collection: str, face: str, p: WriteKey, svc: ServiceDep) -> dict[str, Any]:
    """Remove one face (its embedding and thumbnail); the person stays."""
    svc.delete_face(allowed_collection(svc, p, collection), face)
    return success({"id": face, "deleted": True})


@router.get(
    "/faces/{face}/image",
    response_model=Envelope[FaceImageOut],
    responses={
        **ERROR_RESPONSES,
        200: {"content": {"image/jpeg": {}}, "description": "the JPEG, or JSON with format=base64"},
    },
    summary="Download a face thumbnail",
)
def face_image(
    face: str,
    p: ReadKey,
    svc: ServiceDep,
    format: Annotated[
        Literal["binary", "base64"], Query(description="binary JPEG or base64 in JSON")
    ] = "binary",
) -> Any:
    """The stored face thumbnail (the aligned face, JPEG): binary `image/jpeg`, or with
    `format=base64` JSON `{file_base64, file_name, file_type, file_id}`."""
    found, data = svc.face_image(face)
    if p.collections is not None:
        allowed_collection(svc, p, found.collection_id)
    if format == "base64":
        return success(FaceImageOut.of(found, data))
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Content-Disposition": f'inline; filename="{found.id}.jpg"', "Cache-Control": "private"},
    )
