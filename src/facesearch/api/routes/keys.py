"""API keys over HTTP (admin keys not limited to some collections)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from facesearch.api.deps import AdminKey, Cursor, Limit, ServiceDep, paginate
from facesearch.api.errors import success
from facesearch.api.responses import ERROR_RESPONSES, Envelope, KeyCreated, KeyList, KeyOut
from facesearch.api.schemas import KeyCreate

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERROR_RESPONSES)


@router.post("", status_code=201, response_model=Envelope[KeyCreated], summary="Create an API key")
def create_key(p: AdminKey, svc: ServiceDep, body: KeyCreate) -> dict[str, Any]:
    """A new key with a role (`reader`, `writer`, `admin`), optionally limited to some existing
    collections (by id or name). The key is bound to those collections' ids: renaming one, or
    creating a new collection with an old name, never changes what it reaches. The key itself
    is in `key`, shown only in this response: only its hash is stored."""
    p.require_unlimited("manage API keys")
    record, plaintext = svc.store.create_api_key(body.name, body.role, body.collections)
    return success(KeyCreated.created(record, plaintext))


@router.get("", response_model=Envelope[KeyList], summary="List API keys")
def list_keys(
    p: AdminKey,
    svc: ServiceDep,
    include_revoked: Annotated[bool, Query(description="list revoked keys too")] = True,
    collection: Annotated[
        str | None, Query(description="only keys that reach this collection (id or name)")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Every key's id, name, prefix, role, the collections it reaches (id and current name) and
    dates (never the key itself)."""
    p.require_unlimited("manage API keys")
    records = svc.store.list_api_keys(include_revoked)
    if collection is not None:
        cid = svc.collection(collection).id
        records = [r for r in records if r.allows(cid)]
    page, next_cursor = paginate(records, limit, cursor)
    return success({"keys": [KeyOut.of(k) for k in page], "next_cursor": next_cursor})


@router.delete("/{key}", response_model=Envelope[KeyOut], summary="Revoke an API key")
def revoke_key(key: str, p: AdminKey, svc: ServiceDep) -> dict[str, Any]:
    """Revoke a key by id (`key_...`); idempotent. It stops working at once."""
    p.require_unlimited("manage API keys")
    return success(KeyOut.of(svc.store.revoke_api_key(key)))
