"""Groups of a collection and their members; persons in no group are in ``default``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from facesearch.api.deps import Cursor, Limit, ReadKey, ServiceDep, WriteKey, allowed_collection, paginate
from facesearch.api.errors import success
from facesearch.api.responses import ERROR_RESPONSES, Deleted, Envelope, GroupList, GroupOut, PersonOut
from facesearch.api.schemas import GroupCreate

router = APIRouter(prefix="/collections/{collection}/groups", tags=["groups"], responses=ERROR_RESPONSES)


@router.get("", response_model=Envelope[GroupList], summary="List groups")
def list_groups(
    collection: str, p: ReadKey, svc: ServiceDep, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Groups with their person counts, the implicit `default` group first."""
    groups = svc.list_groups(allowed_collection(svc, p, collection))
    page, next_cursor = paginate(groups, limit, cursor)
    return success({"groups": [GroupOut.of(g) for g in page], "next_cursor": next_cursor})


@router.post("", status_code=201, response_model=Envelope[GroupOut], summary="Create a group")
def create_group(collection: str, p: WriteKey, svc: ServiceDep, body: GroupCreate) -> dict[str, Any]:
    """Create a group; 409 CONFLICT when the name is taken."""
    return success(GroupOut.of(svc.create_group(allowed_collection(svc, p, collection), body.name)))


@router.delete("/{group}", response_model=Envelope[Deleted], summary="Delete a group")
def delete_group(collection: str, group: str, p: WriteKey, svc: ServiceDep) -> dict[str, Any]:
    """Delete a group by name or id; its persons stay, without that membership."""
    svc.delete_group(allowed_collection(svc, p, collection), group)
    return success({"id": group, "deleted": True})


@router.put(
    "/{group}/persons/{person}", response_model=Envelope[PersonOut], summary="Add a person to a group"
)
def add_member(collection: str, group: str, person: str, p: WriteKey, svc: ServiceDep) -> dict[str, Any]:
    """Put a person in a group (a group named here is created when missing); idempotent."""
    member = svc.add_member(allowed_collection(svc, p, collection), group, person)
    return success(PersonOut.of(member, with_faces=False))


@router.delete(
    "/{group}/persons/{person}", response_model=Envelope[PersonOut], summary="Remove a person from a group"
)
def remove_member(collection: str, group: str, person: str, p: WriteKey, svc: ServiceDep) -> dict[str, Any]:
    """Take a person out of a group; 404 when they were not in it."""
    member = svc.remove_member(allowed_collection(svc, p, collection), group, person)
    return success(PersonOut.of(member, with_faces=False))
