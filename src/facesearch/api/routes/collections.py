"""Collections: list and read (reader), create, edit and delete (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from facesearch.api.deps import AdminKey, Cursor, Limit, ReadKey, ServiceDep, allowed_collection, paginate
from facesearch.api.errors import success
from facesearch.api.responses import ERROR_RESPONSES, CollectionList, CollectionOut, Deleted, Envelope
from facesearch.api.schemas import CollectionCreate, CollectionUpdate

router = APIRouter(prefix="/collections", tags=["collections"], responses=ERROR_RESPONSES)


@router.get("", response_model=Envelope[CollectionList], summary="List collections")
def list_collections(p: ReadKey, svc: ServiceDep, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Collections with person and face counts (only those the key may see)."""
    visible = [c for c in svc.list_collections() if p.allows(c.id)]
    page, next_cursor = paginate(visible, limit, cursor)
    return success({"collections": [CollectionOut.of(c) for c in page], "next_cursor": next_cursor})


@router.post("", status_code=201, response_model=Envelope[CollectionOut], summary="Create a collection")
def create_collection(p: AdminKey, svc: ServiceDep, body: CollectionCreate) -> dict[str, Any]:
    """Create a collection; its model pack is fixed for life. 409 CONFLICT on a taken name.
    A key limited to some collections cannot create one (403 FORBIDDEN)."""
    p.require_unlimited("create collections")
    settings = body.settings.model_dump(exclude_none=True) if body.settings else None
    coll = svc.create_collection(
        body.name,
        title=body.title,
        description=body.description,
        kind=body.kind,
        pack=body.pack,
        settings=settings,
    )
    return success(CollectionOut.of(coll))


@router.get("/{collection}", response_model=Envelope[CollectionOut], summary="Read a collection")
def get_collection(collection: str, p: ReadKey, svc: ServiceDep) -> dict[str, Any]:
    """A collection by name or id, with its settings and counts."""
    return success(CollectionOut.of(svc.get_collection(allowed_collection(svc, p, collection))))


@router.patch("/{collection}", response_model=Envelope[CollectionOut], summary="Edit a collection")
def update_collection(
    collection: str, p: AdminKey, svc: ServiceDep, body: CollectionUpdate
) -> dict[str, Any]:
    """Edit name, title, description, kind or settings (settings merge key by key)."""
    ref = allowed_collection(svc, p, collection)  # keys bind to the id: a rename keeps them
    fields = body.model_dump(exclude_unset=True, exclude={"settings"})
    if body.settings is not None:
        fields["settings"] = body.settings.model_dump(exclude_unset=True)
    return success(CollectionOut.of(svc.update_collection(ref, **fields)))


@router.delete("/{collection}", response_model=Envelope[Deleted], summary="Delete a collection")
def delete_collection(collection: str, p: AdminKey, svc: ServiceDep) -> dict[str, Any]:
    """Delete a collection with every person, face, thumbnail and group in it."""
    coll = allowed_collection(svc, p, collection)
    svc.delete_collection(coll)
    return success({"id": coll.id, "deleted": True})
