"""Pydantic request and response models: they validate input and document the API.

Routes that take a photo accept ``multipart/form-data`` or JSON; their parameters are
the ``*Params`` models below, validated by ``deps.ImageBody`` (which also documents the
image fields). Other bodies are plain JSON models. Responses are wrapped in
``Envelope[...]``: ``{"success": true, "data": ...}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")

FaceChoice = Literal["central", "largest"]
SearchMode = Literal["fast", "accurate"]
Kind = Literal["internal", "external", "watchlist"]
Role = Literal["reader", "writer", "admin"]


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


class Params(BaseModel):
    """Base of the parameter models of photo routes (form fields or JSON keys)."""

    model_config = ConfigDict(extra="forbid")
    #: Fields that take several values (repeated form fields or comma-separated text).
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Fields holding a JSON object (sent as JSON text in multipart forms).
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()


class PersonFields(Params):
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("metadata",)

    external_id: str | None = Field(None, max_length=255, description="your id, unique in the collection")
    name: str | None = Field(None, max_length=255)
    metadata: dict[str, Any] | None = Field(None, description="any JSON object (a JSON string in forms)")

    parse_metadata = field_validator("metadata", mode="before")(json_object)


class PersonCreateParams(PersonFields):
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("groups",)

    groups: list[str] = Field(default_factory=list, description="group names (repeated or comma-separated)")
    crop: bool = Field(False, description="the images are already tight face crops: no detection")
    check_liveness: bool = Field(False, description="refuse photos not judged live (LIVENESS_FAILED)")

    split_groups = field_validator("groups", mode="before")(split_list)


class AddFaceParams(Params):
    face: FaceChoice = Field("central", description="which face when the photo has several")
    crop: bool = Field(False, description="the image is already a tight face crop: no detection")
    check_liveness: bool = Field(False, description="refuse a photo not judged live (LIVENESS_FAILED)")


class SearchParams(Params):
    """What every search takes."""

    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("groups",)

    top_k: int = Field(1, ge=1, le=100, description="how many matches")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="minimum similarity (default: collection's)"
    )
    max_false_positive_rate: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="instead of threshold: the chance a stranger matches anyone in the searched gallery; "
        "the threshold used follows from the pack's calibration and the gallery's size",
    )
    groups: list[str] | None = Field(None, description="search only persons of these groups")
    search_mode: SearchMode = Field("fast", description="fast: ANN index; accurate: exhaustive")
    return_metadata: bool = True
    check_liveness: bool = Field(False, description="fail with LIVENESS_FAILED when the face is not live")

    split_groups = field_validator("groups", mode="before")(split_list)


class IdentifyParams(SearchParams):
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("metadata",)

    deduplicate: bool = Field(True, description="best face per person only")
    return_thumbnails: bool = Field(False, description="each match's face thumbnail as base64")
    face: FaceChoice = Field("central", description="which face when the photo has several")
    crop: bool = Field(False, description="the image is already a tight face crop: no detection")
    auto_enroll: bool | None = Field(
        None, description="keep the query face on a strong match (default: collection's)"
    )
    enroll_if_unknown: bool = Field(False, description="create a person from the face when nothing matches")
    external_id: str | None = Field(None, max_length=255, description="for enroll_if_unknown")
    name: str | None = Field(None, max_length=255, description="for enroll_if_unknown")
    metadata: dict[str, Any] | None = Field(None, description="for enroll_if_unknown")

    parse_metadata = field_validator("metadata", mode="before")(json_object)


class MultiSearchParams(IdentifyParams):
    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("groups", "collections")

    collections: list[str] = Field(min_length=1, max_length=100, description="names or ids to search")

    split_collections = field_validator("collections", mode="before")(split_list)


class IdentifyAllParams(SearchParams):
    max_faces: int = Field(20, ge=1, le=100, description="at most this many faces")
    min_face_size: int = Field(32, ge=8, le=4096, description="smallest face, in pixels")
    output_size: int | None = Field(160, ge=16, le=1024, description="width of the returned crops")
    output_aspect: float = Field(1.0, ge=0.25, le=4.0, description="width / height of the returned crops")


class DetectParams(Params):
    min_face_size: int = Field(32, ge=8, le=4096, description="smallest face, in pixels")
    max_faces: int = Field(100, ge=1, le=1000)
    check_liveness: bool = False


class VerifyParams(Params):
    collection: str | None = Field(None, description="with person: the person's collection")
    person: str | None = Field(
        None, description="compare image_a with this person's faces instead of image_b"
    )
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="similarity needed for match")
    crop: bool = Field(False, description="the images are already tight face crops")


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


class PersonList(BaseModel):
    persons: list[PersonOut]
    next_cursor: str | None


class GroupOut(BaseModel):
    id: str
    collection_id: str
    name: str
    person_count: int
    created_at: datetime


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


class IdentifyOut(BaseModel):
    matches: list[MatchOut]
    face: QueryFaceOut
    threshold: float
    auto_enrolled_face_id: str | None
    created_person_id: str | None
    searched: int = Field(description="faces compared or indexed")
    query_time_ms: float
    timings: dict[str, float] = Field(description="decode_ms, detect_ms, embed_ms, search_ms")


class FaceResultOut(BaseModel):
    face: QueryFaceOut
    crop: str = Field(description="JPEG crop as base64")
    matches: list[MatchOut]


class IdentifyAllOut(BaseModel):
    faces: list[FaceResultOut]
    unrecognized: list[FaceResultOut]
    threshold: float
    searched: int = Field(description="faces compared or indexed")
    query_time_ms: float
    timings: dict[str, float] = Field(description="decode_ms, detect_ms, embed_ms, search_ms")


class DetectOut(BaseModel):
    faces: list[QueryFaceOut]
    searched: int = Field(description="faces compared or indexed")
    query_time_ms: float
    timings: dict[str, float] = Field(description="decode_ms, detect_ms, embed_ms, search_ms")


class VerifyOut(BaseModel):
    similarity: float
    distance: float
    match: bool
    threshold: float
    faces: list[QueryFaceOut]
    searched: int = Field(description="faces compared or indexed")
    query_time_ms: float
    timings: dict[str, float] = Field(description="decode_ms, detect_ms, embed_ms, search_ms")


class FaceImageOut(BaseModel):
    file_id: str
    file_name: str
    file_type: str
    file_base64: str


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


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself: shown only this once")


class KeyList(BaseModel):
    keys: list[KeyOut]
    next_cursor: str | None


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
