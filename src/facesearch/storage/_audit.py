"""The audit log: append one entry per audited request, read them back, purge past the retention."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from facesearch.errors import ValidationError
from facesearch.storage._base import NO_SYNC, StoreBase, check_json_object
from facesearch.storage.records import decode_cursor, encode_cursor
from facesearch.storage.tables import DbAudit, utcnow

#: The longest a stored text of an entry may be (longer values are cut, never refused: an audit
#: entry must not fail because of what a caller sent).
_TEXT_LIMITS = {"operation": 64, "method": 10, "path": 300, "outcome": 40, "request_id": 64, "client": 64}


@dataclass(frozen=True)
class AuditEntry:
    """One audited request (what ``GET /v1/audit`` lists)."""

    operation: str
    method: str
    path: str
    status: int
    outcome: str  # "ok", or the error code
    key_id: str | None = None
    collection_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    client: str | None = None
    at: datetime | None = None
    id: int | None = None


class AuditMixin(StoreBase):
    """Append-only audit entries (the retention purge is the only delete)."""

    def add_audit(self, entry: AuditEntry) -> int:
        """Append one entry in its own transaction; returns its id."""
        texts = {k: (getattr(entry, k) or "")[:n] or None for k, n in _TEXT_LIMITS.items()}
        values = {
            "at": utcnow(),
            "key_id": (entry.key_id or "")[:32] or None,
            "collection_id": (entry.collection_id or "")[:32] or None,
            "operation": texts["operation"] or "unknown",
            "method": texts["method"] or "",
            "path": texts["path"] or "",
            "status": int(entry.status),
            "outcome": texts["outcome"] or "",
            "summary": check_json_object(entry.summary or {}, "summary"),
            "request_id": texts["request_id"],
            "client": texts["client"],
        }
        with self._write(bump=False) as s:
            # A Core INSERT: one row per audited request, without the ORM's unit of work.
            new_id = s.execute(insert(DbAudit).values(**values).returning(DbAudit.id)).scalar_one()
            return int(new_id)

    def list_audit(
        self,
        *,
        collection_id: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        operation: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        """Entries matching every filter given, oldest first, a page at a time."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError("limit must be from 1 to 1000", field="limit")
        stmt = select(DbAudit)
        if collection_id is not None:
            stmt = stmt.where(DbAudit.collection_id == collection_id)
        if key_id is not None:
            stmt = stmt.where(DbAudit.key_id == key_id)
        if since is not None:
            stmt = stmt.where(DbAudit.at >= since)
        if until is not None:
            stmt = stmt.where(DbAudit.at < until)
        if operation is not None:
            stmt = stmt.where(DbAudit.operation == operation)
        if cursor:
            stmt = stmt.where(DbAudit.id > decode_cursor(cursor))
        with self._read() as s:
            rows = list(s.scalars(stmt.order_by(DbAudit.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        out = [
            AuditEntry(
                operation=r.operation,
                method=r.method,
                path=r.path,
                status=r.status,
                outcome=r.outcome,
                key_id=r.key_id,
                collection_id=r.collection_id,
                summary=dict(r.summary or {}),
                request_id=r.request_id,
                client=r.client,
                at=r.at,
                id=r.id,
            )
            for r in rows
        ]
        return out, encode_cursor(rows[-1].id) if more else None

    def purge_audit(self, retention_days: int) -> int:
        """Remove the entries older than ``retention_days``; how many."""
        cutoff = utcnow() - timedelta(days=retention_days)
        with self._write(bump=False) as s:
            result = s.execute(delete(DbAudit).where(DbAudit.at < cutoff), execution_options=NO_SYNC)
            return int(getattr(result, "rowcount", 0) or 0)
