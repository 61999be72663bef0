"""``GET /v1/audit``: the audit log, for admin keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from facesearch.api.deps import AdminKey, Cursor, ServiceDep, allowed_collection
from facesearch.api.errors import success
from facesearch.api.responses import ERROR_RESPONSES, AuditList, AuditOut, Envelope
from facesearch.errors import Forbidden, NotFound, ValidationError

router = APIRouter(tags=["audit"], responses=ERROR_RESPONSES)


def _when(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValidationError(f"{name} needs a time zone, e.g. 2026-12-01T00:00:00Z", field=name)
    return value.astimezone(UTC)


@router.get("/audit", response_model=Envelope[AuditList], summary="Read the audit log")
def read_audit(
    p: AdminKey,
    svc: ServiceDep,
    collection: Annotated[
        str | None, Query(description="a collection (id or name; a deleted one by id)")
    ] = None,
    key: Annotated[str | None, Query(max_length=32, description="entries of this key id (key_...)")] = None,
    since: Annotated[datetime | None, Query(description="from this time on (ISO 8601 with zone)")] = None,
    until: Annotated[datetime | None, Query(description="before this time")] = None,
    operation: Annotated[str | None, Query(max_length=64, description="e.g. identify, delete_person")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Audited requests (every search, enrolment, correction, deletion and key change over HTTP),
    oldest first, filtered by collection, key, time and operation. An admin key limited to some
    collections must name one of them."""
    collection_id = None
    if collection is not None:
        try:
            collection_id = allowed_collection(svc, p, collection).id
        except NotFound:
            if not collection.startswith("col_"):
                raise
            p.check_collection(collection)  # a deleted collection, by its id
            collection_id = collection
    elif p.collections is not None:
        raise Forbidden(
            "this admin key is limited to some collections: name one of them (collection=...)",
            details={"field": "collection"},
        )
    svc.store.purge_audit(svc.settings.audit_retention_days)
    entries, next_cursor = svc.store.list_audit(
        collection_id=collection_id,
        key_id=key,
        since=_when(since, "since"),
        until=_when(until, "until"),
        operation=operation,
        limit=limit,
        cursor=cursor,
    )
    return success({"entries": [AuditOut.of(e) for e in entries], "next_cursor": next_cursor})
