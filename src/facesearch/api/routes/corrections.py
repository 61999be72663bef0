"""Corrections (negatives, different people, merge, split) and unknown faces (clusters, naming)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from facesearch.api.deps import (
    Cursor,
    ImageBody,
    ImageRequest,
    Limit,
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
    DifferentList,
    Envelope,
    ForgottenOut,
    NamedUnknownsOut,
    NegativeList,
    NegativeOut,
    PersonOut,
    UnknownClusterList,
    UnknownClusterOut,
    UnknownFaceList,
    UnknownFaceOut,
)
from facesearch.api.schemas import (
    DifferentCreate,
    ForgetUnknowns,
    MergeBody,
    NameUnknowns,
    NegativeParams,
    SplitBody,
)
from facesearch.service.corrections import CLUSTER_FACES_DEFAULT, CLUSTER_FACES_MAX

router = APIRouter(tags=["corrections"], responses=ERROR_RESPONSES)
PERSON = "/collections/{collection}/persons/{person}"
NEGATIVE_BODY = ImageBody(NegativeParams, required=())
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "the JPEG thumbnail"}
}


def _jpeg(data: bytes, name: str) -> Response:
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Content-Disposition": f'inline; filename="{name}.jpg"', "Cache-Control": "private"},
    )


# --- negatives ---------------------------------------------------------------------------------


@router.post(
    PERSON + "/negatives",
    status_code=201,
    response_model=Envelope[NegativeOut],
    responses=IMAGE_ERROR_RESPONSES,
    summary="This face is not this person",
    openapi_extra=NEGATIVE_BODY.openapi,
)
def add_negative(
    collection: str,
    person: str,
    p: WriteKey,
    svc: ServiceDep,
    body: Annotated[ImageRequest[NegativeParams], Depends(NEGATIVE_BODY)],
) -> dict[str, Any]:
    """Record that a face is not this person: a photo (file `image`, `image_base64` or
    `image_url`; its central face), or `face_id`, a stored face (a face of this very person, such
    as a wrong auto-enrolment, is removed from them at once). From then on a query face closer to
    this negative than to the person is never matched to them, whatever the threshold."""
    coll = allowed_collection(svc, p, collection)
    image = body.images.get("image")
    negative, removed = svc.add_negative(coll, person, image=image, face=body.params.face_id)
    return success(NegativeOut.of(negative, coll.id, removed))


@router.get(PERSON + "/negatives", response_model=Envelope[NegativeList], summary="List a person's negatives")
def list_negatives(collection: str, person: str, p: ReadKey, svc: ServiceDep) -> dict[str, Any]:
    """The person's "not this person" corrections, oldest first."""
    coll = allowed_collection(svc, p, collection)
    return success({"negatives": [NegativeOut.of(n, coll.id) for n in svc.list_negatives(coll, person)]})


@router.delete(
    PERSON + "/negatives/{negative}", response_model=Envelope[Deleted], summary="Remove a negative"
)
def delete_negative(
    collection: str, person: str, negative: str, p: WriteKey, svc: ServiceDep
) -> dict[str, Any]:
    """Remove one correction: such faces may be matched to the person again."""
    svc.delete_negative(allowed_collection(svc, p, collection), person, negative)
    return success({"id": negative, "deleted": True})


@router.get(PERSON + "/negatives/{negative}/image", responses=JPEG, summary="A negative's thumbnail")
def negative_image(collection: str, person: str, negative: str, p: ReadKey, svc: ServiceDep) -> Response:
    """The face kept with a negative (JPEG)."""
    return _jpeg(svc.negative_image(allowed_collection(svc, p, collection), person, negative), negative)


# --- different people --------------------------------------------------------------------------


@router.post(
    PERSON + "/different",
    response_model=Envelope[DifferentList],
    summary="These two persons are different people",
)
def set_different(
    collection: str, person: str, p: WriteKey, svc: ServiceDep, body: DifferentCreate
) -> dict[str, Any]:
    """Record that this person and `person` are different people (twins, siblings): when both
    match one face, the result lists both in `ambiguous` instead of silently naming one."""
    others = svc.set_different(allowed_collection(svc, p, collection), person, body.person)
    return success({"persons": [PersonOut.of(x, with_faces=False) for x in others]})


@router.get(
    PERSON + "/different", response_model=Envelope[DifferentList], summary="Persons recorded as different"
)
def list_different(collection: str, person: str, p: ReadKey, svc: ServiceDep) -> dict[str, Any]:
    """The persons recorded as different people from this one."""
    others = svc.list_different(allowed_collection(svc, p, collection), person)
    return success({"persons": [PersonOut.of(x, with_faces=False) for x in others]})


@router.delete(
    PERSON + "/different/{other}",
    response_model=Envelope[Deleted],
    summary="Forget a different-people record",
)
def unset_different(collection: str, person: str, other: str, p: WriteKey, svc: ServiceDep) -> dict[str, Any]:
    """Forget that the two persons are different people."""
    svc.unset_different(allowed_collection(svc, p, collection), person, other)
    return success({"id": other, "deleted": True})


# --- merge and split ---------------------------------------------------------------------------


@router.post(
    PERSON + "/merge", response_model=Envelope[PersonOut], summary="Merge another person into this one"
)
def merge_persons(
    collection: str, person: str, p: WriteKey, svc: ServiceDep, body: MergeBody
) -> dict[str, Any]:
    """Move every face, group, negative and different-people record of `from` to this person and
    delete `from`, in one transaction. `from`'s id then answers 404 NOT_FOUND with
    `details.merged_into`. 409 CONFLICT when the two are recorded as different people;
    FACE_LIMIT_REACHED past the collection's max_faces_per_person."""
    merged = svc.merge_persons(
        allowed_collection(svc, p, collection), person, body.source, metadata=body.metadata
    )
    return success(PersonOut.of(merged))


@router.post(
    PERSON + "/split",
    status_code=201,
    response_model=Envelope[PersonOut],
    summary="Split faces off into a new person",
)
def split_person(
    collection: str, person: str, p: WriteKey, svc: ServiceDep, body: SplitBody
) -> dict[str, Any]:
    """Move the chosen `faces` of this person to a new person (`external_id`, `name`,
    `metadata`, `groups`), in one transaction. Every face must be this person's."""
    new = svc.split_person(
        allowed_collection(svc, p, collection),
        person,
        body.faces,
        external_id=body.external_id,
        name=body.name,
        metadata=body.metadata,
        groups=body.groups,
    )
    return success(PersonOut.of(new))


# --- unknown faces -----------------------------------------------------------------------------


@router.get(
    "/collections/{collection}/unknowns/clusters",
    response_model=Envelope[UnknownClusterList],
    summary="Unknown faces, clustered",
)
def unknown_clusters(
    collection: str,
    p: ReadKey,
    svc: ServiceDep,
    limit: Annotated[
        int, Query(ge=1, le=CLUSTER_FACES_MAX, description="cluster the newest this many unknown faces")
    ] = CLUSTER_FACES_DEFAULT,
    min_size: Annotated[int, Query(ge=1, le=CLUSTER_FACES_MAX, description="only clusters this large")] = 1,
) -> dict[str, Any]:
    """Faces that searches matched to nobody (kept when the collection's `remember_unknown` is
    on), grouped into likely-same-person clusters, largest first, each with its size, first and
    last seen, its faces and sample thumbnails."""
    coll = allowed_collection(svc, p, collection)
    clusters, held = svc.unknown_clusters(coll, limit=limit, min_size=min_size)
    return success(
        {
            "clusters": [UnknownClusterOut.of(c, coll.id) for c in clusters],
            "unknown_faces": held,
            "clustered": min(held, limit),
        }
    )


@router.get(
    "/collections/{collection}/unknowns",
    response_model=Envelope[UnknownFaceList],
    summary="List unknown faces",
)
def list_unknowns(
    collection: str, p: ReadKey, svc: ServiceDep, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """A page of remembered unknown faces, newest first: when, by which kind of search and which
    request (`request_id`, the search's X-Request-ID) each was seen, with its box and quality."""
    found, next_cursor = svc.list_unknowns(allowed_collection(svc, p, collection), limit=limit, cursor=cursor)
    return success({"unknowns": [UnknownFaceOut.of(u) for u in found], "next_cursor": next_cursor})


@router.get("/collections/{collection}/unknowns/{unknown}/image", responses=JPEG, summary="An unknown face")
def unknown_image(collection: str, unknown: str, p: ReadKey, svc: ServiceDep) -> Response:
    """The thumbnail (JPEG) of a remembered unknown face."""
    return _jpeg(svc.unknown_image(allowed_collection(svc, p, collection), unknown), unknown)


@router.post(
    "/collections/{collection}/unknowns/persons",
    status_code=201,
    response_model=Envelope[NamedUnknownsOut],
    summary="Turn unknown faces into a person",
)
def name_unknowns(collection: str, p: WriteKey, svc: ServiceDep, body: NameUnknowns) -> dict[str, Any]:
    """Every face of a `cluster` (its id, or any of its faces), or the listed `unknowns`, become
    faces of `person` (an existing one), else of a new person (`external_id`, `name`, `metadata`,
    `groups`); they are no longer unknown. The largest faces are kept when the person has less
    room (max_faces_per_person) than faces given."""
    person, added = svc.name_unknowns(
        allowed_collection(svc, p, collection),
        unknowns=body.unknowns or (),
        cluster=body.cluster,
        person=body.person,
        external_id=body.external_id,
        name=body.name,
        metadata=body.metadata,
        groups=body.groups,
    )
    return success({"person": PersonOut.of(person), "faces_added": added})


@router.post(
    "/collections/{collection}/unknowns/forget",
    response_model=Envelope[ForgottenOut],
    summary="Forget unknown faces now",
)
def forget_unknowns(collection: str, p: WriteKey, svc: ServiceDep, body: ForgetUnknowns) -> dict[str, Any]:
    """Forget these unknown faces before their retention period ends."""
    return success({"forgotten": svc.forget_unknowns(allowed_collection(svc, p, collection), body.unknowns)})
