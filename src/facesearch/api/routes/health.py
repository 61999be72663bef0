"""``GET /v1/health``: no key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from facesearch import __version__
from facesearch.api.deps import ServiceDep
from facesearch.api.errors import success
from facesearch.api.responses import Envelope, HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Envelope[HealthOut], summary="Status, model pack, index, counts")
def health(svc: ServiceDep) -> dict[str, Any]:
    """Whether the service is up, with its model pack, index backend and what it holds. No key needed."""
    workers = svc.models.workers()
    return success(
        {
            "status": "ok" if workers["state"] in ("ok", "in-process") else "degraded",
            "workers": workers,
            "version": __version__,
            "model_pack": svc.default_pack,
            "index_backend": type(svc.index).__name__,
            "counts": svc.counts(),
        }
    )
