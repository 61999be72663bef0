"""Pack migrations of a collection (admin): start, follow, list, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from facesearch.api.deps import AdminKey, ReadKey, ServiceDep, allowed_collection
from facesearch.api.errors import success
from facesearch.api.responses import ERROR_RESPONSES, Envelope, MigrationList, MigrationOut
from facesearch.api.schemas import MigrationCreate

router = APIRouter(
    prefix="/collections/{collection}/migrations", tags=["migrations"], responses=ERROR_RESPONSES
)


@router.post("", status_code=202, response_model=Envelope[MigrationOut], summary="Move to another model pack")
def start_migration(collection: str, p: AdminKey, svc: ServiceDep, body: MigrationCreate) -> dict[str, Any]:
    """Start embedding every face again with `pack` from its stored source (setting keep_source),
    in the background; identify keeps the old pack until every face is done, then the collection
    switches in one transaction. 422 when faces have no source (unless `drop_unmigratable`);
    409 while another migration of the collection is not finished."""
    coll = allowed_collection(svc, p, collection)
    return success(
        MigrationOut.of(svc.start_migration(coll, body.pack, drop_unmigratable=body.drop_unmigratable))
    )


@router.get("", response_model=Envelope[MigrationList], summary="List a collection's migrations")
def list_migrations(collection: str, p: ReadKey, svc: ServiceDep) -> dict[str, Any]:
    """Every migration of the collection, oldest first, with its progress."""
    found = svc.list_migrations(allowed_collection(svc, p, collection))
    return success({"migrations": [MigrationOut.of(m) for m in found]})


@router.get("/{migration}", response_model=Envelope[MigrationOut], summary="Follow a migration")
def migration_status(collection: str, migration: str, p: ReadKey, svc: ServiceDep) -> dict[str, Any]:
    """State, faces done of total, failures, rate (faces/s) and time left."""
    return success(MigrationOut.of(svc.migration_status(allowed_collection(svc, p, collection), migration)))


@router.delete("/{migration}", response_model=Envelope[MigrationOut], summary="Cancel a migration")
def cancel_migration(collection: str, migration: str, p: AdminKey, svc: ServiceDep) -> dict[str, Any]:
    """Stop a migration that has not switched yet and drop its new embeddings; the collection
    stays on its pack."""
    return success(MigrationOut.of(svc.cancel_migration(allowed_collection(svc, p, collection), migration)))
