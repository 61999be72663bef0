"""``create_app(settings)``: the FastAPI application over one FaceSearch service.

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, so SQL, index
search and waiting for the worker processes (detection and embedding) never block the
event loop. The app owns its service and closes it on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from facesearch import __version__
from facesearch.api.audit import AuditMiddleware
from facesearch.api.errors import install_error_handlers
from facesearch.api.limits import BodySizeLimitMiddleware
from facesearch.api.routes import ROUTERS
from facesearch.api.security import Authenticator, install_log_redaction
from facesearch.api.urlfetch import UrlFetcher
from facesearch.config import Settings
from facesearch.pipeline.analyzer import ProcessAnalyzer
from facesearch.pipeline.packs import resolve_pack_name
from facesearch.service import FaceSearch
from facesearch.web import install_web

DESCRIPTION = """\
Self-hosted face identification: collections of persons with enrolled faces, and
1:N (identify, search), N:N (identify-all), 1:1 (verify) search and detection.

Every route except `GET /v1/health` needs an API key: `X-API-Key: <key>` or
`Authorization: Bearer <key>`. Roles: `reader` (read, search, detect, verify),
`writer` (+ persons, faces, groups), `admin` (+ collections and keys).

Every response is `{"success": true, "data": ...}` or
`{"success": false, "error": {"code", "message", "details"}}`.

Photos: `multipart/form-data` with a file field `image` (other parameters as form
fields; lists as repeated fields or comma-separated), or JSON with `image_base64`
(plain base64 or a `data:` URI) or `image_url`. Base64 wins when both are given.
"""


WARM_UP_TIMEOUT_S = 120.0


def build_service(settings: Settings) -> FaceSearch:
    """The service for ``settings``: worker processes for CPU work when ``settings.workers`` > 0.

    The workers load the default pack's models while this process opens SQL and the index,
    and the service is returned once both are done: the first photo pays no model loading.
    """
    analyzer = None
    if settings.workers > 0:
        analyzer = ProcessAnalyzer(
            settings.workers,
            warm=(resolve_pack_name(settings.default_pack, settings.pack_config()),),
            config=settings.pack_config(),
        )
    try:
        service = FaceSearch(settings, analyzer=analyzer)
        if analyzer is not None:
            analyzer.wait_started(timeout=WARM_UP_TIMEOUT_S)
        return service
    except BaseException:
        if analyzer is not None:
            analyzer.close()
        raise


def create_app(
    settings: Settings | None = None,
    *,
    service: FaceSearch | None = None,
    fetcher: UrlFetcher | None = None,
) -> FastAPI:
    """The HTTP API over ``service`` (built from ``settings`` when not given).

    The app takes ownership of the service: it is closed when the app shuts down.
    """
    if settings is None:
        settings = service.settings if service is not None else Settings()
    svc = service if service is not None else build_service(settings)
    svc.start_background()  # pack migrations run while the server serves

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_redaction()  # uvicorn has configured its loggers by now
        try:
            yield
        finally:
            await run_in_threadpool(svc.close)

    app = FastAPI(
        title="facesearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # the page at /docs is served from the installed package (web/)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = svc
    app.state.auth = Authenticator(svc.store)
    app.state.fetcher = fetcher or UrlFetcher(settings)
    install_error_handlers(app)
    app.add_middleware(AuditMiddleware, store_of=lambda: svc.store)  # outside the request ids
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    install_web(app)  # the page at / (static files, no key; its /v1 calls need one)
    install_log_redaction()
    return app
