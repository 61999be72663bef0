"""The one place that turns errors into HTTP responses with the API envelope.

``install_error_handlers(app)`` renders every failure as
``{"success": false, "error": {"code", "message", "details"}}`` and tags every response
with an ``X-Request-ID`` header; ``success(data)`` builds the happy envelope.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facesearch.errors import FaceSearchError
from facesearch.service.context import CURRENT_REQUEST_ID
from facesearch.storage.cache import enter_request_scope

__all__ = [
    "REQUEST_ID_HEADER",
    "STATUS_BY_CODE",
    "RequestIdMiddleware",
    "error_body",
    "error_response",
    "install_error_handlers",
    "request_id_for",
    "status_for",
    "success",
]

logger = logging.getLogger("facesearch.api")

REQUEST_ID_HEADER = "X-Request-ID"

#: Stable error code -> HTTP status (API.md "Error codes", plus the codes this layer adds).
STATUS_BY_CODE: dict[str, int] = {
    "VALIDATION_ERROR": 422,
    "IMAGE_DECODE_FAILED": 400,
    "IMAGE_TOO_LARGE": 413,
    "IMAGE_URL_REFUSED": 400,
    "FACE_NOT_DETECTED": 422,
    "FACE_QUALITY_TOO_LOW": 422,
    "LIVENESS_FAILED": 422,
    "LIVENESS_UNAVAILABLE": 501,
    "MODEL_UNAVAILABLE": 503,
    "WORKERS_UNAVAILABLE": 503,
    "INDEX_UNAVAILABLE": 503,
    "DATABASE_UNAVAILABLE": 503,
    "IMAGE_UNPROCESSABLE": 422,
    "ADDRESS_IN_USE": 500,
    "API_KEY_MISSING": 401,
    "API_KEY_INVALID": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "FACE_LIMIT_REACHED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "BAD_REQUEST": 400,
    "INTERNAL": 500,
}

#: The code given to a bare HTTP status raised by Starlette or FastAPI themselves.
_CODE_BY_STATUS: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "API_KEY_MISSING",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    500: "INTERNAL",
}

#: Where FastAPI says a parameter came from: dropped from the field name.
_LOC_SOURCES = frozenset({"body", "query", "path", "header", "cookie", "form", "file"})


def status_for(code: str) -> int:
    """The HTTP status of an error code (500 for a code this table does not know)."""
    return STATUS_BY_CODE.get(code, 500)


def success(data: Any) -> dict[str, Any]:
    """The success envelope ``{"success": true, "data": data}``."""
    return {"success": True, "data": data}


def success_response(data: BaseModel) -> Response:
    """The success envelope of one response model, serialised by pydantic in one pass (the same
    JSON FastAPI writes for the route's ``response_model``, without validating the model again and
    encoding it through Python objects: the hot routes' answers, identify and identify-all)."""
    body = b'{"success":true,"data":' + data.__pydantic_serializer__.to_json(data) + b"}"
    return Response(content=body, media_type="application/json")


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The failure envelope, with ``details`` made JSON-safe."""
    return {
        "success": False,
        "error": {"code": code, "message": message, "details": _json_safe(dict(details or {}))},
    }


def error_response(
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying the failure envelope (status from the code unless given)."""
    return JSONResponse(
        error_body(code, message, details),
        status_code=status if status is not None else status_for(code),
        headers=dict(headers) if headers else None,
    )


def request_id_for(scope: Scope) -> str:
    """The request's id (uuid4 hex), created on first use and kept in ``scope["state"]``."""
    state = scope.setdefault("state", {})
    rid = state.get("request_id")
    if not isinstance(rid, str):
        rid = uuid.uuid4().hex
        state["request_id"] = rid
    return rid


class RequestIdMiddleware:
    """Pure ASGI middleware: give each HTTP request an id and send it as ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_for(scope)
        CURRENT_REQUEST_ID.set(rid)  # read by the service (remembered unknown faces name it)
        enter_request_scope()  # the store caches this request's reads (storage/cache.py)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def install_error_handlers(app: FastAPI) -> None:
    """Register the envelope-rendering exception handlers and ``RequestIdMiddleware`` on ``app``."""
    app.add_exception_handler(FaceSearchError, _handle_facesearch_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    for down in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(down, _handle_database_down)
    app.add_exception_handler(Exception, _handle_unexpected)
    app.add_middleware(RequestIdMiddleware)


async def _handle_facesearch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FaceSearchError)
    status = status_for(exc.code)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        logger.warning(
            "%s on %s %s (request_id=%s): %s",
            exc.code,
            request.method,
            request.url.path,
            request_id_for(request.scope),
            exc.message,
        )
    return error_response(exc.code, exc.message, exc.details, status=status, headers=headers)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_simplify(e) for e in exc.errors()]
    fields = list(dict.fromkeys(e["field"] for e in errors))
    if len(errors) == 1:
        message = f"invalid value for {errors[0]['field']}: {errors[0]['msg']}"
    elif errors:
        message = f"{len(errors)} invalid parameters: {', '.join(fields)}"
    else:
        message = "invalid request"
    details: dict[str, Any] = {"field": fields[0] if fields else None, "errors": errors}
    if len(fields) > 1:
        details["fields"] = fields
    return error_response("VALIDATION_ERROR", message, details)


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _CODE_BY_STATUS.get(status) or _code_from_status(status)
    phrase = _phrase(status)
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    details: dict[str, Any] = {}
    if status == 404:
        details["path"] = request.url.path
        if message == phrase:
            message = f"no such resource: {request.url.path}"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        details = {"method": request.method, "allowed": [m.strip() for m in allowed.split(",") if m.strip()]}
        if message == phrase:
            message = f"method {request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(code, message, details, status=status, headers=headers)


async def _handle_database_down(request: Request, exc: Exception) -> JSONResponse:
    """A lost or refused database connection, or a pool or statement timeout: not a bug, 503."""
    logger.warning(
        "DATABASE_UNAVAILABLE on %s %s (request_id=%s): %s",
        request.method,
        request.url.path,
        request_id_for(request.scope),
        type(getattr(exc, "orig", None) or exc).__name__,
    )
    return error_response(
        "DATABASE_UNAVAILABLE",
        "the database cannot be reached or timed out; this request was not acknowledged, try again",
    )


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id_for(request.scope)
    # Method and path only: never headers (keys) nor bodies (images) in the log.
    logger.error(
        "unhandled %s on %s %s (request_id=%s)",
        type(exc).__name__,
        request.method,
        request.url.path,
        rid,
        exc_info=exc,
    )
    return error_response(
        "INTERNAL",
        f"internal error; quote request id {rid} when reporting it",
        {"request_id": rid},
        headers={REQUEST_ID_HEADER: rid},
    )


def _simplify(error: Mapping[str, Any]) -> dict[str, Any]:
    """One pydantic error as plain JSON: field, loc, msg, type (never the input or ctx)."""
    loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
    parts = loc[1:] if len(loc) > 1 and loc[0] in _LOC_SOURCES else loc
    field = ".".join(str(p) for p in parts) or "body"
    return {"field": field, "loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _code_from_status(status: int) -> str:
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "INTERNAL" if status >= 500 else "BAD_REQUEST"


def _json_safe(value: Any) -> Any:
    """``value`` with anything JSON cannot hold turned into plain numbers or strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # the JSON encoder refuses NaN and infinities
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes | bytearray):
        return [_json_safe(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _json_safe(item())
        except (TypeError, ValueError):
            pass
    return str(value)
