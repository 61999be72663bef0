"""The audit log of the HTTP API: every request that changes something or searches (every method
but GET, HEAD and OPTIONS: searches, enrolments, corrections, deletions, key changes) leaves one
append-only entry in SQL with the time, the key id (never the key), the collection, the operation
(the route's name), the answer's status and error code, a summary of the result (ids and
similarities, never photos or keys), the request id and the client address.

The entry is committed before the answer is sent, so a caller holding an answer knows its entry
exists; if writing it fails (the database went away between the request's own work and the entry)
the failure is logged as an error and the answer still goes out: an answer is never turned into an
error after the request's own transaction committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facesearch.errors import FaceSearchError
from facesearch.storage import Store
from facesearch.storage._audit import AuditEntry

log = logging.getLogger("facesearch.audit")

#: The note of the request being audited: the key and collection the request resolved, filled in by
#: the key check (deps.py) and ``allowed_collection``. A dict, so that the route's thread (which runs
#: in a copy of this context) writes into the same object.
CURRENT_AUDIT: ContextVar[dict[str, Any] | None] = ContextVar("facesearch_audit", default=None)

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_IDS = 100  # ids listed per summary field (the count is always given)


def note(**fields: Any) -> None:
    """Record facts about the request being audited (no-op outside one); the first value wins."""
    current = CURRENT_AUDIT.get()
    if current is not None:
        for k, v in fields.items():
            current.setdefault(k, v)


def _matches(ms: list[dict[str, Any]]) -> list[list[Any]]:
    return [[m.get("person_id"), m.get("similarity")] for m in ms[:_MAX_IDS]]


def _ids(items: list[dict[str, Any]], key: str = "id") -> list[Any]:
    return [i.get(key) for i in items[:_MAX_IDS]]


def _search(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"matches": _matches(d.get("matches") or []), "searched": d.get("searched")}
    for k in ("unknown_id", "created_person_id", "auto_enrolled_face_id"):
        if d.get(k):
            out[k] = d[k]
    if d.get("vetoed"):
        out["vetoed"] = d["vetoed"]
    if d.get("ambiguous"):
        out["ambiguous"] = _ids(d["ambiguous"], "person_id")
    return out


def _identify_all(d: dict[str, Any]) -> dict[str, Any]:
    faces = [*(d.get("faces") or []), *(d.get("unrecognized") or [])]
    return {
        "faces": len(faces),
        "matches": [_matches(f.get("matches") or [])[:1] for f in faces[:_MAX_IDS]],
        "unknown_ids": [f["unknown_id"] for f in faces[:_MAX_IDS] if f.get("unknown_id")],
    }


def _person(d: dict[str, Any]) -> dict[str, Any]:
    return {"person_id": d.get("id"), "faces": _ids(d.get("faces") or [])}


SUMMARIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "identify": _search,
    "search": _search,
    "identify_all": _identify_all,
    "verify": lambda d: {"match": d.get("match"), "similarity": d.get("similarity")},
    "detect": lambda d: {"faces": len(d.get("faces") or [])},
    "create_person": _person,
    "update_person": lambda d: {"person_id": d.get("id")},
    "merge_persons": _person,
    "split_person": _person,
    "add_face": lambda d: {"face_id": d.get("id"), "person_id": d.get("person_id")},
    "add_negative": lambda d: {
        "negative_id": d.get("id"),
        "person_id": d.get("person_id"),
        "removed_face_id": d.get("removed_face_id"),
    },
    "name_unknowns": lambda d: {
        "person_id": (d.get("person") or {}).get("id"),
        "faces_added": d.get("faces_added"),
    },
    "forget_unknowns": lambda d: {"forgotten": d.get("forgotten")},
    "create_key": lambda d: {
        "key_id": d.get("id"),
        "role": d.get("role"),
        "collections": d.get("collections"),
    },
    "revoke_key": lambda d: {"key_id": d.get("id")},
    "create_collection": lambda d: {"collection_id": d.get("id"), "name": d.get("name")},
    "update_collection": lambda d: {"collection_id": d.get("id"), "name": d.get("name")},
    "set_different": lambda d: {"persons": _ids(d.get("persons") or [])},
    "create_group": lambda d: {"group_id": d.get("id"), "name": d.get("name")},
    "start_migration": lambda d: {"migration_id": d.get("id"), "to_pack": d.get("to_pack")},
    "cancel_migration": lambda d: {"migration_id": d.get("id"), "state": d.get("state")},
}


def summarise(operation: str, body: bytes) -> tuple[str, dict[str, Any], str | None]:
    """(outcome, summary, collection id seen in the answer) of a JSON answer."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "ok", {}, None
    if not isinstance(envelope, dict):
        return "ok", {}, None
    if envelope.get("success") is False:
        error = envelope.get("error") or {}
        return str(error.get("code") or "ERROR"), {}, None
    data = envelope.get("data")
    if not isinstance(data, dict):
        return "ok", {}, None
    fn = SUMMARIES.get(operation)
    if fn is not None:
        summary = fn(data)
    else:  # deletions and the rest: what was acted on
        summary = {k: data[k] for k in ("id", "deleted") if k in data}
    coll = (
        data.get("id")
        if operation in ("create_collection", "update_collection")
        else data.get("collection_id")
    )
    return "ok", summary, coll if isinstance(coll, str) else None


class AuditMiddleware:
    """Pure ASGI middleware writing one audit entry per audited request (module docstring)."""

    def __init__(self, app: ASGIApp, store_of: Callable[[], Store]) -> None:
        self.app = app
        self.store_of = store_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS:
            await self.app(scope, receive, send)
            return
        facts: dict[str, Any] = {}
        token = CURRENT_AUDIT.set(facts)
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                held.append(message)
                return
            if message["type"] == "http.response.body" and held:
                held.append(message)
                if message.get("more_body"):
                    return
                await self._record(scope, facts, held)
                for m in held:
                    await send(m)
                held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, hold)
        except Exception:
            await self._record(scope, facts, [{"type": "http.response.start", "status": 500}], crashed=True)
            raise
        finally:
            CURRENT_AUDIT.reset(token)

    async def _record(
        self, scope: Scope, facts: dict[str, Any], held: list[Message], *, crashed: bool = False
    ) -> None:
        endpoint = scope.get("endpoint")
        if endpoint is None and not facts:
            return  # no route matched (404 of an unknown path): nothing to audit
        operation = getattr(endpoint, "__name__", "unknown")
        status = int(held[0].get("status", 0))
        body = b"".join(m.get("body", b"") for m in held[1:])
        outcome, summary, seen_collection = (
            ("INTERNAL_ERROR", {}, None) if crashed else summarise(operation, body)
        )
        client = scope.get("client")
        state = scope.get("state") or {}
        entry = AuditEntry(
            operation=operation,
            method=str(scope["method"]),
            path=str(scope.get("path", "")),
            status=status,
            outcome=outcome,
            key_id=facts.get("key_id"),
            collection_id=facts.get("collection_id") or seen_collection,
            summary=summary,
            request_id=state.get("request_id") if isinstance(state, dict) else None,
            client=f"{client[0]}" if client else None,
        )
        ref = (scope.get("path_params") or {}).get("collection")
        try:
            await run_in_threadpool(self._write, entry, ref if entry.collection_id is None else None)
        except Exception:  # the request's own work is done: log, never fail the answer
            log.exception("could not write the audit entry of %s %s", scope["method"], scope.get("path"))

    def _write(self, entry: AuditEntry, collection_ref: str | None) -> None:
        """Write the entry; a request refused before its collection was looked up (a wrong role,
        say) still names the collection of its path when that exists."""
        store = self.store_of()
        if collection_ref:
            try:
                entry = replace(entry, collection_id=store.collection_info(collection_ref).id)
            except FaceSearchError:
                pass
        store.add_audit(entry)
