"""One router per resource; ``ROUTERS`` is what ``create_app`` mounts under ``/v1``."""

from fastapi import APIRouter

from facesearch.api.routes import (
    audit,
    collections,
    corrections,
    faces,
    groups,
    health,
    keys,
    migrations,
    persons,
    search,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    collections.router,
    persons.router,
    corrections.router,
    faces.router,
    groups.router,
    search.router,
    keys.router,
    audit.router,
    migrations.router,
)

__all__ = ["ROUTERS"]
