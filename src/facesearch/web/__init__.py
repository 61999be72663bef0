"""The built-in web page: ``GET /`` and its static files (no build step, nothing from elsewhere).

``install_web(app)`` adds plain Starlette routes (not API routes: they are not in the
OpenAPI document and need no key). The page itself talks only to the public ``/v1`` API,
sending the key the user typed with every call.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["CSP", "DOCS_CSP", "FILES", "install_web"]

#: Only this app's own scripts, styles and API; images also from blob: and data: URLs
#: (face thumbnails fetched with the key, crops returned as base64).
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

#: The API docs page: the same, but Swagger UI sets inline style attributes.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

#: URL path -> (file in this package, content type).
FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/web/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/web/style.css": ("style.css", "text/css; charset=utf-8"),
    "/docs": ("docs.html", "text/html; charset=utf-8"),
    "/web/docs.js": ("docs.js", "text/javascript; charset=utf-8"),
}

#: Swagger UI's files (Swagger UI 5, Apache-2.0), from the installed ``fastapi-offline`` package (MIT),
#: which ships them for exactly this: FastAPI docs without a CDN.
DOCS_ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}


def _endpoint(name: str, media_type: str) -> Callable[[Request], Response]:
    headers = {**HEADERS, "Content-Security-Policy": DOCS_CSP} if name == "docs.html" else HEADERS

    def serve(request: Request) -> Response:
        data = resources.files(__package__ or "facesearch.web").joinpath(name).read_bytes()
        return Response(data, media_type=media_type, headers=headers)

    serve.__name__ = f"web_{name.replace('.', '_')}"
    return serve


def _docs_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in DOCS_ASSETS:
        return Response(status_code=404)
    data = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
    headers = {**HEADERS, "Cache-Control": "public, max-age=86400"}
    return Response(data, media_type=DOCS_ASSETS[name], headers=headers)


def install_web(app: FastAPI) -> None:
    """Serve the page at ``/``, its files under ``/web/`` and the API docs at ``/docs`` with Swagger
    UI's files under ``/docs/assets/`` (GET and HEAD, no key)."""
    for path, (name, media_type) in FILES.items():
        app.add_route(path, _endpoint(name, media_type), methods=["GET", "HEAD"], include_in_schema=False)
    app.add_route("/docs/assets/{name}", _docs_asset, methods=["GET", "HEAD"], include_in_schema=False)
