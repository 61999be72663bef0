"""``GET /v1/health``: no key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from facesearch import __version__
from facesearch.api.deps import ServiceDep
from facesearch.api.errors import success
from facesearch.api.responses import Envelope, HealthOut
from facesearch.errors import IndexUnavailable

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Envelope[HealthOut], summary="Status, model pack, index, counts")
def health(svc: ServiceDep) -> dict[str, Any]:
    """Whether the service is up, with its model pack, index backend and what it holds. No key needed."""
    workers = svc.models.workers()
    index_state = "ok"
    try:
        check = getattr(svc.index, "check", None)  # an index server (Milvus): is it reachable?
        if check is not None:
            check()
        counts: dict[str, int | None] = dict(svc.counts())
    except IndexUnavailable:
        index_state = "unavailable"
        counts = {
            "collections": len(svc.store.list_collections()),
            "faces": None,
            "negatives": svc.store.negative_count(),
            "unknown_faces": svc.store.unknown_count(),
        }
    ok = workers["state"] in ("ok", "in-process") and index_state == "ok"
    return success(
        {
            "status": "ok" if ok else "degraded",
            "workers": workers,
            "version": __version__,
            "model_pack": svc.default_pack,
            "index_backend": type(svc.index).__name__,
            "index_state": index_state,
            "counts": counts,
        }
    )
