"""Pydantic request and response models: they validate input and document the API.

Routes that take a photo accept ``multipart/form-data`` or JSON; their parameters are
the ``*Params`` models below, validated by ``deps.ImageBody`` (which also documents the
image fields). Other bodies are plain JSON models. Responses are wrapped in
``Envelope[...]``: ``{"success": true, "data": ...}``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import types
import typing
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from facesearch.domain import (
    KINDS,
    Box,
    Collection,
    Face,
    FaceResult,
    Group,
    IdentifyAllResult,
    IdentifyResult,
    Match,
    Person,
    QueryFace,
    VerifyResult,
)
from facesearch.service.options import (
    DetectOptions,
    EnrolOptions,
    IdentifyAllOptions,
    MatchOptions,
    Options,
    SearchOptions,
    VerifyOptions,
)
from facesearch.storage.records import ROLES, ApiKeyRecord

T = TypeVar("T")

if typing.TYPE_CHECKING:
    Kind = str
    Role = str
else:  # the allowed values from their one home
    Kind = Literal[KINDS]
    Role = Literal[ROLES]


def split_list(value: Any) -> Any:
    """Lists from repeated fields and/or comma-separated text: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [part.strip() for v in value for part in v.split(",") if part.strip()]
    return value


def json_object(value: Any) -> Any:
    """A JSON object given as text (multipart form fields) is parsed; anything else is left alone."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else None
        except json.JSONDecodeError:
            raise ValueError("must be a JSON object") from None
    return value


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_without_none(annotation)) is list


def _is_object(annotation: Any) -> bool:
    inner = _without_none(annotation)
    return inner is dict or typing.get_origin(inner) is dict


OptionsT = TypeVar("OptionsT", bound=Options)


class Params(BaseModel):
    """Base of the parameter models of photo routes (form fields or JSON keys).

    Most are generated from the service's options values (``params_for``), so an option is
    declared once, in ``service/options.py``; ``to_options`` turns the parameters back into it.
    """

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def list_fields(cls) -> tuple[str, ...]:
        """Fields that take several values (repeated form fields or comma-separated text)."""
        return tuple(n for n, f in cls.model_fields.items() if _is_list(f.annotation))

    @classmethod
    def json_fields(cls) -> tuple[str, ...]:
        """Fields holding a JSON object (sent as JSON text in multipart forms)."""
        return tuple(n for n, f in cls.model_fields.items() if _is_object(f.annotation))

    def to_options(self, cls: type[OptionsT]) -> OptionsT:
        """The options value of type ``cls`` from the parameters that belong to it."""
        names = {f.name for f in dataclasses.fields(cls)} & set(type(self).model_fields)
        return cls(**{n: getattr(self, n) for n in names})


def _http_annotation(annotation: Any) -> Any:
    """The HTTP type of an option: tuples of names are JSON lists."""
    inner = _without_none(annotation)
    if typing.get_origin(inner) is tuple:
        listed: Any = list[typing.get_args(inner)[0]]  # type: ignore[misc]
        return listed | None if inner is not annotation else listed
    return annotation


def params_for(options: type[Options], name: str, *, exclude: tuple[str, ...] = ()) -> type[Params]:
    """The HTTP parameter model of an options value: each field with its default, limits and
    description, lists split from repeated or comma-separated form fields, objects parsed from
    JSON text."""
    hints = typing.get_type_hints(options)
    definitions: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        if f.name in exclude:
            continue
        m = f.metadata
        limits = {k: m[k] for k in ("ge", "le", "gt", "lt", "max_length") if k in m}
        definitions[f.name] = (
            _http_annotation(hints[f.name]),
            Field(f.default, description=m["doc"], **limits),
        )
    lists = [n for n, (ann, _) in definitions.items() if _is_list(ann)]
    objects = [n for n, (ann, _) in definitions.items() if _is_object(ann)]
    validators: dict[str, Any] = {}
    if lists:
        validators["split_lists"] = field_validator(*lists, mode="before")(split_list)
    if objects:
        validators["parse_objects"] = field_validator(*objects, mode="before")(json_object)
    model: type[Params] = create_model(name, __base__=Params, __validators__=validators, **definitions)
    return model


# The photo routes' parameters: generated from the options values, plus the HTTP-only fields.
# (mypy sees the generated bases as Any: the fields are checked by pydantic at run time.)


class SearchParams(params_for(MatchOptions, "MatchOptions")):  # type: ignore[misc]
    """What every search takes."""


class IdentifyParams(params_for(SearchOptions, "SearchOptions")):  # type: ignore[misc]
    """Identify (1:N)."""


class MultiSearchParams(IdentifyParams):
    """Identify over several collections."""

    collections: list[str] = Field(min_length=1, max_length=100, description="names or ids to search")

    split_collections = field_validator("collections", mode="before")(split_list)


class IdentifyAllParams(params_for(IdentifyAllOptions, "IdentifyAllOptions")):  # type: ignore[misc]
    """Identify-all (N:N)."""


class DetectParams(params_for(DetectOptions, "DetectOptions")):  # type: ignore[misc]
    """Detection."""


class AddFaceParams(params_for(EnrolOptions, "EnrolOptions")):  # type: ignore[misc]
    """Adding a face to a person."""


class VerifyParams(params_for(VerifyOptions, "VerifyOptions")):  # type: ignore[misc]
    """Verification (1:1)."""

    collection: str | None = Field(None, description="with person: the person's collection")
    person: str | None = Field(
        None, description="compare image_a with this person's faces instead of image_b"
    )


class PersonFields(Params):
    external_id: str | None = Field(None, max_length=255, description="your id, unique in the collection")
    name: str | None = Field(None, max_length=255)
    metadata: dict[str, Any] | None = Field(None, description="any JSON object (a JSON string in forms)")

    parse_metadata = field_validator("metadata", mode="before")(json_object)


class PersonCreateParams(PersonFields, params_for(EnrolOptions, "EnrolPhotos", exclude=("face",))):  # type: ignore[misc]
    groups: list[str] = Field(default_factory=list, description="group names (repeated or comma-separated)")

    split_groups = field_validator("groups", mode="before")(split_list)


# --- JSON bodies --------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionSettings(Body):
    default_threshold: float | None = Field(None, ge=0.0, le=1.0, description="minimum similarity")
    auto_enroll: bool | None = Field(None, description="keep query faces of strong matches")
    auto_enroll_threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_faces_per_person: int | None = Field(None, ge=1, le=1000)


class CollectionCreate(Body):
    name: str = Field(min_length=1, max_length=64, description="unique; letters, digits, '.', '_', '-'")
    title: str = Field("", max_length=200)
    description: str = Field("", max_length=10_000)
    kind: Kind = "internal"
    pack: str | None = Field(None, max_length=50, description="model pack (default: the server's)")
    settings: CollectionSettings | None = None


class CollectionUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=64)
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    kind: Kind | None = None
    settings: CollectionSettings | None = None


class PersonUpdate(Body):
    external_id: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=255)
    metadata: dict[str, Any] | None = Field(None, description="replaces the metadata")
    groups: list[str] | None = Field(None, description="replaces the groups")


class GroupCreate(Body):
    name: str = Field(min_length=1, max_length=100)


class KeyCreate(Body):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    collections: list[str] | None = Field(None, description="limit the key to these collection names")


# --- responses ----------------------------------------------------------------------------


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T


class ErrorBody(BaseModel):
    code: str = Field(description="stable UPPER_SNAKE code")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    success: Literal[False] = False
    error: ErrorBody


class BoxOut(BaseModel):
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def of(cls, b: Box) -> BoxOut:
        return cls(left=b.left, top=b.top, width=b.width, height=b.height)


class CollectionOut(BaseModel):
    id: str
    name: str
    title: str
    description: str
    kind: str
    pack: str
    settings: dict[str, Any]
    person_count: int
    face_count: int
    created_at: datetime

    @classmethod
    def of(cls, c: Collection) -> CollectionOut:
        return cls(
            id=c.id,
            name=c.name,
            title=c.title,
            description=c.description,
            kind=c.kind,
            pack=c.pack,
            settings=dict(c.settings),
            person_count=c.person_count or 0,
            face_count=c.face_count or 0,
            created_at=c.created_at,
        )


class CollectionList(BaseModel):
    collections: list[CollectionOut]
    next_cursor: str | None


class FaceOut(BaseModel):
    id: str
    person_id: str
    collection_id: str
    pack: str
    box: BoxOut
    quality: dict[str, Any]
    created_at: datetime
    thumbnail_url: str

    @classmethod
    def of(cls, f: Face) -> FaceOut:
        return cls(
            id=f.id,
            person_id=f.person_id,
            collection_id=f.collection_id,
            pack=f.pack,
            box=BoxOut.of(f.box),
            quality=dict(f.quality),
            created_at=f.created_at,
            thumbnail_url=f"/v1/faces/{f.id}/image",
        )


class PersonOut(BaseModel):
    id: str
    collection_id: str
    external_id: str
    name: str
    metadata: dict[str, Any]
    groups: list[str]
    created_at: datetime
    updated_at: datetime
    faces: list[FaceOut] | None = Field(None, description="present when reading one person")

    @classmethod
    def of(cls, p: Person, *, with_faces: bool = True) -> PersonOut:
        return cls(
            id=p.id,
            collection_id=p.collection_id,
            external_id=p.external_id,
            name=p.name,
            metadata=dict(p.metadata),
            groups=list(p.groups),
            created_at=p.created_at,
            updated_at=p.updated_at,
            faces=[FaceOut.of(f) for f in p.faces] if with_faces else None,
        )


class PersonList(BaseModel):
    persons: list[PersonOut]
    next_cursor: str | None


class GroupOut(BaseModel):
    id: str
    collection_id: str
    name: str
    person_count: int
    created_at: datetime

    @classmethod
    def of(cls, g: Group) -> GroupOut:
        return cls(
            id=g.id,
            collection_id=g.collection_id,
            name=g.name,
            person_count=g.person_count,
            created_at=g.created_at,
        )


class GroupList(BaseModel):
    groups: list[GroupOut]
    next_cursor: str | None


class Deleted(BaseModel):
    id: str
    deleted: Literal[True] = True


class QueryFaceOut(BaseModel):
    box: BoxOut
    landmarks: list[list[float]]
    detection_score: float
    quality: dict[str, Any]

    @classmethod
    def of(cls, q: QueryFace) -> QueryFaceOut:
        return cls(
            box=BoxOut.of(q.box),
            landmarks=q.landmarks.to_list(),
            detection_score=round(q.score, 3),
            quality=q.quality.to_dict(),
        )


class MatchOut(BaseModel):
    rank: int
    similarity: float
    distance: float
    person_id: str
    external_id: str
    name: str
    metadata: dict[str, Any]
    groups: list[str]
    face_id: str
    collection: str
    thumbnail: str | None = Field(None, description="JPEG as base64, with return_thumbnails")

    @classmethod
    def of(cls, m: Match) -> MatchOut:
        return cls(
            rank=m.rank,
            similarity=m.similarity,
            distance=m.distance,
            person_id=m.person.id,
            external_id=m.person.external_id,
            name=m.person.name,
            metadata=dict(m.person.metadata),
            groups=list(m.person.groups),
            face_id=m.face_id,
            collection=m.collection,
            thumbnail=b64(m.thumbnail),
        )


STAGES = ("decode_ms", "detect_ms", "embed_ms", "search_ms")


class Timed(BaseModel):
    """What every search response carries: faces searched, time taken, time per stage."""

    searched: int = Field(description="faces compared or indexed")
    query_time_ms: float
    timings: dict[str, float] = Field(description="decode_ms, detect_ms, embed_ms, search_ms")

    @staticmethod
    def stages(timings: dict[str, float]) -> dict[str, float]:
        """Per-stage milliseconds, rounded; the stages a search did not run read 0."""
        return {**dict.fromkeys(STAGES, 0.0), **{k: round(float(v), 3) for k, v in timings.items()}}


class IdentifyOut(Timed):
    matches: list[MatchOut]
    face: QueryFaceOut
    threshold: float
    auto_enrolled_face_id: str | None
    created_person_id: str | None

    @classmethod
    def of(cls, r: IdentifyResult) -> IdentifyOut:
        return cls(
            matches=[MatchOut.of(m) for m in r.matches],
            face=QueryFaceOut.of(r.face),
            threshold=r.threshold,
            auto_enrolled_face_id=r.auto_enrolled_face_id,
            created_person_id=r.created_person_id,
            searched=r.searched,
            query_time_ms=r.query_time_ms,
            timings=cls.stages(r.timings),
        )


class FaceResultOut(BaseModel):
    face: QueryFaceOut
    crop: str = Field(description="JPEG crop as base64")
    matches: list[MatchOut]

    @classmethod
    def of(cls, f: FaceResult) -> FaceResultOut:
        return cls(
            face=QueryFaceOut.of(f.face), crop=b64(f.crop) or "", matches=[MatchOut.of(m) for m in f.matches]
        )


class IdentifyAllOut(Timed):
    faces: list[FaceResultOut]
    unrecognized: list[FaceResultOut]
    threshold: float

    @classmethod
    def of(cls, r: IdentifyAllResult) -> IdentifyAllOut:
        return cls(
            faces=[FaceResultOut.of(f) for f in r.faces],
            unrecognized=[FaceResultOut.of(f) for f in r.unrecognized],
            threshold=r.threshold,
            searched=r.searched,
            query_time_ms=r.query_time_ms,
            timings=cls.stages(r.timings),
        )


class DetectOut(Timed):
    faces: list[QueryFaceOut]

    @classmethod
    def of(cls, faces: Iterable[QueryFace], query_time_ms: float, timings: dict[str, float]) -> DetectOut:
        return cls(
            faces=[QueryFaceOut.of(q) for q in faces],
            searched=0,
            query_time_ms=query_time_ms,
            timings=cls.stages(timings),
        )


class VerifyOut(Timed):
    similarity: float
    distance: float
    match: bool
    threshold: float
    faces: list[QueryFaceOut]

    @classmethod
    def of(cls, r: VerifyResult) -> VerifyOut:
        return cls(
            similarity=r.similarity,
            distance=r.distance,
            match=r.match,
            threshold=r.threshold,
            faces=[QueryFaceOut.of(q) for q in r.faces],
            searched=r.searched,
            query_time_ms=r.query_time_ms,
            timings=cls.stages(r.timings),
        )


class FaceImageOut(BaseModel):
    file_id: str
    file_name: str
    file_type: str
    file_base64: str

    @classmethod
    def of(cls, f: Face, data: bytes) -> FaceImageOut:
        return cls(file_id=f.id, file_name=f"{f.id}.jpg", file_type="image/jpeg", file_base64=b64(data) or "")


class HealthOut(BaseModel):
    status: str
    version: str
    model_pack: str
    index_backend: str
    counts: dict[str, int]


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    collections: list[str] | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def fields_of(cls, k: ApiKeyRecord) -> dict[str, Any]:
        return {
            "id": k.id,
            "name": k.name,
            "prefix": k.prefix,
            "role": k.role,
            "collections": list(k.collections) if k.collections is not None else None,
            "created_at": k.created_at,
            "last_used_at": k.last_used_at,
            "revoked_at": k.revoked_at,
        }

    @classmethod
    def of(cls, k: ApiKeyRecord) -> KeyOut:
        return cls(**cls.fields_of(k))


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown only this once")

    @classmethod
    def created(cls, k: ApiKeyRecord, plaintext: str) -> KeyCreated:
        return cls(**cls.fields_of(k), key=plaintext)


class KeyList(BaseModel):
    keys: list[KeyOut]
    next_cursor: str | None


def b64(data: bytes | None) -> str | None:
    """Bytes as standard base64 text (None stays None)."""
    return None if data is None else base64.b64encode(data).decode("ascii")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


#: Failure responses every authenticated route may give (for the OpenAPI document).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("API_KEY_MISSING or API_KEY_INVALID"),
    403: _error("FORBIDDEN: the key's role or collections do not allow it"),
    404: _error("NOT_FOUND"),
    422: _error("VALIDATION_ERROR (details.field names the parameter)"),
}

#: More failures of routes that take a photo.
IMAGE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    400: _error("IMAGE_DECODE_FAILED or IMAGE_URL_REFUSED"),
    413: _error("IMAGE_TOO_LARGE or PAYLOAD_TOO_LARGE"),
    422: _error("VALIDATION_ERROR, FACE_NOT_DETECTED, FACE_QUALITY_TOO_LOW or LIVENESS_FAILED"),
    501: _error("LIVENESS_UNAVAILABLE"),
}
