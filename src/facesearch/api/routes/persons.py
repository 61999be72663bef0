"""Persons of a collection: create (with zero or more photos), list, read, edit, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as FastAPIPath

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
from facesearch.api.examples import COLLECTION_PATH_EXAMPLES, person_example
from facesearch.api.responses import IMAGE_ERROR_RESPONSES, Deleted, Envelope, PersonList, PersonOut
from facesearch.api.schemas import PersonCreateParams, PersonUpdate
from facesearch.service import EnrolOptions

router = APIRouter(
    prefix="/collections/{collection}/persons", tags=["persons"], responses=IMAGE_ERROR_RESPONSES
)

PERSON_BODY = ImageBody(PersonCreateParams, images=(), required=(), many="images", example=person_example)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[PersonOut],
    summary="Create a person",
    openapi_extra=PERSON_BODY.openapi,
)
def create_person(
    collection: Annotated[
        str, FastAPIPath(description="collection id or name", openapi_examples=COLLECTION_PATH_EXAMPLES)
    ],
    p: WriteKey,
    svc: ServiceDep,
    body: Annotated[ImageRequest[PersonCreateParams], Depends(PERSON_BODY)],
) -> dict[str, Any]:
    """Create a person with `external_id` (unique in the collection), `name`, `metadata`, `groups`
    and zero or more photos: multipart files `images` (repeat the field), or JSON `images_base64`
    (a list of base64 strings or data: URIs) or `images_url`. The face nearest the centre of each
    photo is enrolled; one refused photo refuses the whole request. 409 CONFLICT on a taken
    external_id."""
    q = body.params
    person = svc.create_person(
        allowed_collection(svc, p, collection),
        external_id=q.external_id,
        name=q.name or "",
        metadata=q.metadata,
        groups=q.groups,
        images=body.many,
        options=q.to_options(EnrolOptions),
    )
    return success(PersonOut.of(person))


@router.get("", response_model=Envelope[PersonList], summary="List persons")
def list_persons(
    collection: str,
    p: ReadKey,
    svc: ServiceDep,
    group: Annotated[
        str | None, Query(description="only persons of this group ('default': no group)")
    ] = None,
    external_id: Annotated[str | None, Query(description="only the person with this external id")] = None,
    name_prefix: Annotated[str | None, Query(description="names starting with this (any case)")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """A page of persons, oldest first (without their faces)."""
    persons, next_cursor = svc.list_persons(
        allowed_collection(svc, p, collection),
        group=group,
        external_id=external_id,
        name_prefix=name_prefix,
        limit=limit,
        cursor=cursor,
    )
    return success(
        {"persons": [PersonOut.of(x, with_faces=False) for x in persons], "next_cursor": next_cursor}
    )


@router.get("/{person}", response_model=Envelope[PersonOut], summary="Read a person")
def get_person(collection: str, person: str, p: ReadKey, svc: ServiceDep) -> dict[str, Any]:
    """A person with their faces."""
    return success(PersonOut.of(svc.get_person(allowed_collection(svc, p, collection), person)))


@router.patch("/{person}", response_model=Envelope[PersonOut], summary="Edit a person")
def update_person(
    collection: str, person: str, p: WriteKey, svc: ServiceDep, body: PersonUpdate
) -> dict[str, Any]:
    """Edit name, external_id, metadata (replaced) or groups (replaced); omitted fields stay."""
    fields = body.model_dump(exclude_none=True)
    return success(PersonOut.of(svc.update_person(allowed_collection(svc, p, collection), person, **fields)))


@router.delete("/{person}", response_model=Envelope[Deleted], summary="Delete a person")
def delete_person(collection: str, person: str, p: WriteKey, svc: ServiceDep) -> dict[str, Any]:
    """Delete a person with every face, embedding and thumbnail."""
    deleted = svc.delete_person(allowed_collection(svc, p, collection), person)
    return success({"id": deleted, "deleted": True})  # the per_ id, also when addressed by external id
