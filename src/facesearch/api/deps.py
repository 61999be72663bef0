"""Route dependencies: the service, the caller's API key with the action it needs, and photo bodies.

Routes declare the key first (``p: ReadKey``), so a request without a valid key is
refused before its body is looked at. ``ImageBody`` reads a photo request sent as
``multipart/form-data`` (file fields) or JSON (``<field>_base64`` / ``<field>_url``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, cast

import pydantic
from fastapi import Depends, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from facesearch.api import audit
from facesearch.api.schemas import Params
from facesearch.api.security import Action, Authenticator, Principal
from facesearch.api.urlfetch import UrlFetcher
from facesearch.config import Settings
from facesearch.domain import Collection
from facesearch.errors import FaceSearchError, Forbidden, ImageTooLarge, NotFound, ValidationError
from facesearch.imaging import decode_base64
from facesearch.service import FaceSearch
from facesearch.storage.records import decode_cursor, encode_cursor

P = TypeVar("P", bound=Params)

MAX_IMAGES = 100  # per request, whatever their source


def service_of(request: Request) -> FaceSearch:
    """The app's FaceSearch (built by ``create_app``)."""
    return cast(FaceSearch, request.app.state.service)


async def get_service(request: Request) -> FaceSearch:
    """``service_of`` as a dependency. A coroutine: it only reads an attribute, and FastAPI would
    otherwise hand it to a worker thread and back (a thread hop per request)."""
    return service_of(request)


ServiceDep = Annotated[FaceSearch, Depends(get_service)]

_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (fs_...)")
_bearer = HTTPBearer(auto_error=False, description="the API key as a bearer token")


def _principal(action: Action) -> Callable[..., Principal]:
    def principal(
        request: Request,
        _key: Annotated[str | None, Security(_key_header)] = None,
        _token: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        auth = cast(Authenticator, request.app.state.auth)
        caller = auth.authenticate(request)
        audit.note(key_id=caller.key_id)  # also when the role is refused below
        caller.require(action)
        return caller

    principal.__name__ = f"{action}_key"
    return principal


ReadKey = Annotated[Principal, Depends(_principal("read"))]
WriteKey = Annotated[Principal, Depends(_principal("write"))]
AdminKey = Annotated[Principal, Depends(_principal("admin"))]


def allowed_collection(svc: FaceSearch, caller: Principal, ref: str) -> Collection:
    """The collection named by ``ref`` (id or name), read once for the request, when the key may
    use it; ``Forbidden`` otherwise.

    Keys are bound to collection ids: a key limited to some collections gets the same
    ``FORBIDDEN`` for a collection that does not exist as for one it may not see (unless
    ``ref`` is the id of one of its own collections, since deleted).
    """
    try:
        coll = svc.collection(ref)  # no counts: cheap on big collections
    except NotFound:
        if caller.collections is None or ref in caller.collections:
            raise
        raise Forbidden(
            "this API key is not allowed to use this collection", details={"collection": ref}
        ) from None
    audit.note(collection_id=coll.id)
    caller.check_collection(coll.id, ref)
    return coll


# --- photo bodies --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRequest(Generic[P]):
    """A parsed photo request: validated parameters and image bytes by field name."""

    params: P
    images: dict[str, bytes]
    many: list[bytes] = field(default_factory=list)

    def image(self, name: str = "image") -> bytes:
        return self.images[name]


@dataclass
class _Sources:
    b64: list[str] = field(default_factory=list)
    files: list[bytes] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


class ImageBody(Generic[P]):
    """Dependency reading a photo request into ``ImageRequest[P]``; ``.openapi`` documents it.

    ``images`` are single-photo fields (``image``: file, ``image_base64``, ``image_url``;
    base64 wins, then the file, then the URL); ``many`` is a field of several photos
    (repeated ``images`` files, ``images_base64`` and ``images_url`` lists).
    """

    def __init__(
        self,
        model: type[P],
        images: Sequence[str] = ("image",),
        *,
        required: Sequence[str] = ("image",),
        many: str | None = None,
        example: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.names = tuple(images)
        self.required = tuple(required)
        self.many = many
        self.example = example  # a JSON body runnable from /docs (api/examples.py)

    async def __call__(self, request: Request) -> ImageRequest[P]:
        settings: Settings = service_of(request).settings
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        files: dict[str, list[bytes]] = {}
        if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            fields, files = await self._read_form(request, settings)
        elif ctype == "application/json" or ctype.endswith("+json"):
            fields = await self._read_json(request)
        elif not ctype and not (await request.body()).strip():
            fields = {}
        else:
            raise ValidationError(
                f"unsupported content type {ctype or '(none)'!r}: "
                "send multipart/form-data or application/json",
                field="content-type",
            )
        sources = self._sources(fields, files)
        params = self._validate(fields)
        for name in self.required:
            src = sources[name]
            if not (src.b64 or src.files or src.urls):
                raise ValidationError(
                    f"{name} is required: a file field {name!r}, or {name}_base64, or {name}_url", field=name
                )
        fetcher = cast(UrlFetcher, request.app.state.fetcher)
        images, many = await run_in_threadpool(self._resolve, sources, fetcher, settings.max_upload_bytes)
        return ImageRequest(params=params, images=images, many=many)

    async def _read_form(
        self, request: Request, settings: Settings
    ) -> tuple[dict[str, Any], dict[str, list[bytes]]]:
        try:
            form = await request.form(
                max_files=MAX_IMAGES, max_fields=1000, max_part_size=settings.max_request_bytes
            )
        except HTTPException as exc:  # starlette's answer to a malformed form
            raise ValidationError(f"malformed form data: {exc.detail}", field="body") from None
        list_fields = set(self.model.list_fields())
        fields: dict[str, Any] = {}
        files: dict[str, list[bytes]] = {}
        try:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key not in self.names and key != self.many:
                        raise ValidationError(f"unexpected file field {key!r}", field=key)
                    data = await value.read(settings.max_upload_bytes + 1)
                    if len(data) > settings.max_upload_bytes:
                        raise ImageTooLarge(
                            f"{key} is over the limit of {settings.max_upload_bytes} bytes",
                            details={"field": key, "max_bytes": settings.max_upload_bytes},
                        )
                    files.setdefault(key, []).append(data)
                elif key in self.names or key == self.many:
                    raise ValidationError(
                        f"{key} must be a file (curl -F '{key}=@photo.jpg'); "
                        f"send base64 text as {key}_base64",
                        field=key,
                    )
                elif key in list_fields:  # repeated fields, each of them comma-separated
                    fields.setdefault(key, []).extend(p.strip() for p in str(value).split(",") if p.strip())
                elif self.many and key in (f"{self.many}_base64", f"{self.many}_url"):
                    fields.setdefault(key, []).append(value)
                else:
                    fields[key] = value
        finally:
            await form.close()
        return fields, files

    async def _read_json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            value = await run_in_threadpool(json.loads, raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            raise ValidationError("the body is not valid JSON", field="body") from None
        if not isinstance(value, dict):
            raise ValidationError("the JSON body must be an object", field="body")
        return value

    def _sources(self, fields: dict[str, Any], files: dict[str, list[bytes]]) -> dict[str, _Sources]:
        out: dict[str, _Sources] = {}
        for name in self.names:
            src = out[name] = _Sources(files=files.get(name, [])[-1:])
            b64, url = fields.pop(f"{name}_base64", None), fields.pop(f"{name}_url", None)
            if b64 is not None:
                src.b64 = [_text(b64, f"{name}_base64")]
            if url is not None:
                src.urls = [_text(url, f"{name}_url")]
        if self.many:
            name = self.many
            src = out[name] = _Sources(files=files.get(name, []))
            src.b64 = _texts(fields.pop(f"{name}_base64", []), f"{name}_base64")
            src.urls = _texts(fields.pop(f"{name}_url", []), f"{name}_url")
            if len(src.b64) + len(src.files) + len(src.urls) > MAX_IMAGES:
                raise ValidationError(f"at most {MAX_IMAGES} images per request", field=name)
        return out

    def _validate(self, fields: dict[str, Any]) -> P:
        try:
            return self.model.model_validate(fields)
        except pydantic.ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None

    def _resolve(
        self, sources: dict[str, _Sources], fetcher: UrlFetcher, max_bytes: int
    ) -> tuple[dict[str, bytes], list[bytes]]:
        images: dict[str, bytes] = {}
        many: list[bytes] = []
        for name, src in sources.items():
            found: list[bytes] = []
            try:
                found.extend(decode_base64(text, max_bytes=max_bytes) for text in src.b64)
                if name == self.many or not found:
                    found.extend(src.files)
                if name == self.many or not found:
                    found.extend(fetcher.fetch(url) for url in src.urls)
            except FaceSearchError as exc:
                exc.details.setdefault("field", name)
                raise
            if name == self.many:
                many = found
            elif found:
                images[name] = found[0]
        return images, many

    @property
    def openapi(self) -> dict[str, Any]:
        """``openapi_extra`` for the route: the JSON and multipart forms of the body."""
        schema = self.model.model_json_schema()
        props: dict[str, Any] = schema.get("properties", {})
        required = list(schema.get("required", []))
        json_props = dict(props)
        form_props = {k: _form_property(k, v, self.model) for k, v in props.items()}
        for name in self.names:
            need = "required" if name in self.required else "optional"
            json_props[f"{name}_base64"] = {
                "type": "string",
                "description": f"{need}: the photo as base64 or a data: URI (wins over {name}_url)",
            }
            json_props[f"{name}_url"] = {
                "type": "string",
                "description": "an http(s) URL to fetch the photo from (only when the server enables it)",
            }
            form_props[name] = {
                "type": "string",
                "format": "binary",
                "description": f"{need}: JPEG, PNG or WebP",
            }
        if self.many:
            name = self.many
            json_props[f"{name}_base64"] = {
                "type": "array",
                "items": {"type": "string"},
                "description": "photos",
            }
            json_props[f"{name}_url"] = {
                "type": "array",
                "items": {"type": "string"},
                "description": "photo URLs",
            }
            form_props[name] = {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "description": "photos (repeat the field)",
            }

        def body(properties: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
            if required:
                out["required"] = required
            return {"schema": out}

        json_body = body(json_props)
        if self.example is not None:
            json_body["example"] = self.example()
        return {
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": body(form_props), "application/json": json_body},
            }
        }


def _form_property(name: str, prop: dict[str, Any], model: type[Params]) -> dict[str, Any]:
    """A parameter as a form field: no nulls, lists as repeated text, JSON objects as text."""
    doc: dict[str, Any] = {k: prop[k] for k in ("title", "description") if k in prop}
    if name in model.list_fields():
        return {**doc, "type": "array", "items": {"type": "string"}}
    if name in model.json_fields():
        return {**doc, "type": "string", "description": "a JSON object"}
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if len(options) == 1:
        return {
            **doc,
            **options[0],
            **({"default": prop["default"]} if prop.get("default") is not None else {}),
        }
    return {k: v for k, v in prop.items() if not (k == "default" and v is None)}


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    return value


def _texts(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValidationError(f"{name} must be a list of strings", field=name)
    return [_text(v, name) for v in value]


# --- pagination ----------------------------------------------------------------------------

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]

T = TypeVar("T")


def paginate(items: Sequence[T], limit: int, cursor: str | None) -> tuple[list[T], str | None]:
    """One page of a list held in memory, and the opaque cursor of the next page."""
    start = decode_cursor(cursor) if cursor else 0
    page = list(items[start : start + limit])
    return page, encode_cursor(start + limit) if start + limit < len(items) else None
