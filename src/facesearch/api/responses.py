"""Response models: what every route answers, built from the domain results (``Out.of(...)``).

The output shape is written here once: each model's fields, and its ``of`` that reads the domain
value (``Match``, ``IdentifyResult``, ...). Responses are wrapped in ``Envelope[...]``:
``{"success": true, "data": ...}``; failures are ``ErrorEnvelope``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from facesearch.domain import (
    AmbiguousMatch,
    Box,
    Collection,
    DetectResult,
    Face,
    FaceResult,
    Group,
    IdentifyAllResult,
    IdentifyResult,
    Match,
    Negative,
    Person,
    QueryFace,
    ThresholdRule,
    UnknownCluster,
    UnknownFace,
    VerifyResult,
)
from facesearch.storage.records import ApiKeyRecord

T = TypeVar("T")


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
    false_match_rate: float | None = Field(
        None,
        description="the chance that one comparison with a stranger scores at least this well "
        "(the pack's calibration; null for a pack without one)",
    )
    expected_false_matches: float | None = Field(
        None,
        description="false_match_rate x faces searched: how many strangers in a gallery this size "
        "are expected to score as high (0.001: one chance in a thousand)",
    )

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
            false_match_rate=m.false_match_rate,
            expected_false_matches=m.expected_false_matches,
        )


class ThresholdRuleOut(BaseModel):
    kind: Literal["threshold", "max_false_positive_rate"]
    value: float
    set_by: Literal["request", "collection", "pack"]

    @classmethod
    def of(cls, r: ThresholdRule | None) -> ThresholdRuleOut | None:
        return None if r is None else cls(kind=r.kind, value=r.value, set_by=r.set_by)  # type: ignore[arg-type]


RULE_DOC = (
    "which rule set the threshold: a similarity threshold or a max_false_positive_rate, and whether "
    "the request, the collection or the pack set it"
)

STAGES = ("decode_ms", "detect_ms", "embed_ms", "search_ms")


class Timed(BaseModel):
    """What every search response carries: faces searched, time taken, time per stage."""

    searched: int = Field(description="faces compared or indexed")
    query_time_ms: float
    timings: dict[str, float] = Field(
        description="decode_ms, detect_ms, embed_ms, search_ms (and liveness_ms when checked; load_ms "
        "when the photo was the first of a process and paid the model loading)"
    )

    @staticmethod
    def stages(timings: dict[str, float]) -> dict[str, float]:
        """Per-stage milliseconds, rounded; the stages a search did not run read 0."""
        return {**dict.fromkeys(STAGES, 0.0), **{k: round(float(v), 3) for k, v in timings.items()}}


AMBIGUOUS_DOC = (
    "persons recorded as different people that both pass the cut-off for this face, best first (one "
    "may be past top_k): the face is one of them and the service cannot tell which; empty when none"
)


class AmbiguousOut(BaseModel):
    person_id: str
    external_id: str
    name: str
    similarity: float
    distance: float

    @classmethod
    def of(cls, a: AmbiguousMatch) -> AmbiguousOut:
        return cls(
            person_id=a.person.id,
            external_id=a.person.external_id,
            name=a.person.name,
            similarity=a.similarity,
            distance=a.distance,
        )


VETOED_DOC = 'persons kept out of the matches by a "not this person" correction (negatives)'
UNKNOWN_DOC = (
    "the id of the remembered unknown face (collection setting remember_unknown), when nobody matched"
)


class IdentifyOut(Timed):
    matches: list[MatchOut]
    face: QueryFaceOut
    threshold: float = Field(description="the similarity cut-off applied")
    threshold_rule: ThresholdRuleOut | None = Field(None, description=RULE_DOC)
    auto_enrolled_face_id: str | None
    created_person_id: str | None
    ambiguous: list[AmbiguousOut] = Field(default_factory=list, description=AMBIGUOUS_DOC)
    vetoed: int = Field(0, description=VETOED_DOC)
    unknown_id: str | None = Field(None, description=UNKNOWN_DOC)

    @classmethod
    def of(cls, r: IdentifyResult) -> IdentifyOut:
        return cls(
            matches=[MatchOut.of(m) for m in r.matches],
            face=QueryFaceOut.of(r.face),
            threshold=r.threshold,
            threshold_rule=ThresholdRuleOut.of(r.threshold_rule),
            auto_enrolled_face_id=r.auto_enrolled_face_id,
            created_person_id=r.created_person_id,
            ambiguous=[AmbiguousOut.of(a) for a in r.ambiguous],
            vetoed=r.vetoed,
            unknown_id=r.unknown_id,
            searched=r.searched,
            query_time_ms=r.query_time_ms,
            timings=cls.stages(r.timings),
        )


class FaceResultOut(BaseModel):
    face: QueryFaceOut
    crop: str = Field(description="JPEG crop as base64")
    matches: list[MatchOut]
    ambiguous: list[AmbiguousOut] = Field(default_factory=list, description=AMBIGUOUS_DOC)
    vetoed: int = Field(0, description=VETOED_DOC)
    unknown_id: str | None = Field(None, description=UNKNOWN_DOC)

    @classmethod
    def of(cls, f: FaceResult) -> FaceResultOut:
        return cls(
            face=QueryFaceOut.of(f.face),
            crop=b64(f.crop) or "",
            matches=[MatchOut.of(m) for m in f.matches],
            ambiguous=[AmbiguousOut.of(a) for a in f.ambiguous],
            vetoed=f.vetoed,
            unknown_id=f.unknown_id,
        )


SMALLEST_DOC = (
    "the smallest face (pixels of the photo) this scan could find: min_face_size, or more when "
    "the photo is too large to scan that finely within the detector's budget"
)


class IdentifyAllOut(Timed):
    faces: list[FaceResultOut]
    unrecognized: list[FaceResultOut]
    threshold: float = Field(description="the similarity cut-off applied")
    threshold_rule: ThresholdRuleOut | None = Field(None, description=RULE_DOC)
    smallest_face_size: int | None = Field(None, description=SMALLEST_DOC)

    @classmethod
    def of(cls, r: IdentifyAllResult) -> IdentifyAllOut:
        return cls(
            faces=[FaceResultOut.of(f) for f in r.faces],
            unrecognized=[FaceResultOut.of(f) for f in r.unrecognized],
            threshold=r.threshold,
            threshold_rule=ThresholdRuleOut.of(r.threshold_rule),
            searched=r.searched,
            query_time_ms=r.query_time_ms,
            timings=cls.stages(r.timings),
            smallest_face_size=r.smallest_face_size,
        )


class DetectOut(Timed):
    faces: list[QueryFaceOut]
    smallest_face_size: int | None = Field(None, description=SMALLEST_DOC)

    @classmethod
    def of(cls, r: DetectResult, query_time_ms: float) -> DetectOut:
        return cls(
            faces=[QueryFaceOut.of(q) for q in r.faces],
            searched=0,
            query_time_ms=query_time_ms,
            timings=cls.stages(r.timings),
            smallest_face_size=r.smallest_face_size,
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
    status: str = Field(
        description="ok, or degraded while the worker processes are being restarted or the index "
        "server (Milvus) cannot be reached"
    )
    workers: dict[str, Any] = Field(
        default_factory=dict, description="state (ok, restarting, in-process), workers, restarts"
    )
    version: str
    model_pack: str
    index_backend: str
    index_state: str = Field(
        default="ok", description="ok, or unavailable: searches answer INDEX_UNAVAILABLE"
    )
    counts: dict[str, int | None] = Field(
        description="collections, and faces in the index (null: unreachable)"
    )


class KeyScope(BaseModel):
    id: str
    name: str = Field(description="the collection's current name")


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    collections: list[KeyScope] | None = Field(
        description="the collections the key reaches (null: every collection); bound by id, so a "
        "renamed collection keeps its keys and a deleted one drops out"
    )
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
            "collections": None
            if k.collections is None
            else [KeyScope(id=uid, name=name) for uid, name in k.reaches or ()],
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


# --- corrections and unknown faces ------------------------------------------------------------


class NegativeOut(BaseModel):
    id: str
    person_id: str
    collection_id: str
    source_face_id: str | None = Field(description="the stored face it was taken from, if any")
    created_at: datetime
    thumbnail_url: str
    removed_face_id: str | None = Field(
        None, description="when made from a face of this very person: that face, now removed from them"
    )

    @classmethod
    def of(cls, n: Negative, collection: str, removed: str | None = None) -> NegativeOut:
        return cls(
            id=n.id,
            person_id=n.person_id,
            collection_id=n.collection_id,
            source_face_id=n.source_face_id,
            created_at=n.created_at,
            thumbnail_url=f"/v1/collections/{collection}/persons/{n.person_id}/negatives/{n.id}/image",
            removed_face_id=removed,
        )


class NegativeList(BaseModel):
    negatives: list[NegativeOut]


class DifferentList(BaseModel):
    persons: list[PersonOut] = Field(description="the persons recorded as different from this one")


class UnknownClusterOut(BaseModel):
    id: str = Field(description="the id of the cluster's oldest face (stable while that face is kept)")
    size: int
    first_seen: datetime
    last_seen: datetime
    members: list[str] = Field(description="ids of its unknown faces, newest first")
    samples: list[str] = Field(description="ids of its newest faces, for thumbnails")
    sample_urls: list[str]

    @classmethod
    def of(cls, c: UnknownCluster, collection: str) -> UnknownClusterOut:
        return cls(
            id=c.id,
            size=c.size,
            first_seen=c.first_seen,
            last_seen=c.last_seen,
            members=list(c.members),
            samples=list(c.samples),
            sample_urls=[f"/v1/collections/{collection}/unknowns/{u}/image" for u in c.samples],
        )


class UnknownFaceOut(BaseModel):
    id: str
    collection_id: str
    box: BoxOut
    quality: dict[str, Any]
    source: str = Field(description="identify or identify_all")
    request_id: str | None = Field(description="the X-Request-ID of the search that saw it")
    seen_at: datetime
    image_url: str

    @classmethod
    def of(cls, u: UnknownFace) -> UnknownFaceOut:
        return cls(
            id=u.id,
            collection_id=u.collection_id,
            box=BoxOut.of(u.box),
            quality=dict(u.quality),
            source=u.source,
            request_id=u.request_id,
            seen_at=u.seen_at,
            image_url=f"/v1/collections/{u.collection_id}/unknowns/{u.id}/image",
        )


class UnknownFaceList(BaseModel):
    unknowns: list[UnknownFaceOut]
    next_cursor: str | None


class UnknownClusterList(BaseModel):
    clusters: list[UnknownClusterOut]
    unknown_faces: int = Field(description="unknown faces the collection holds")
    clustered: int = Field(description="of those, the newest ones clustered in this answer")


class NamedUnknownsOut(BaseModel):
    person: PersonOut
    faces_added: int = Field(description="faces the person got (the largest, when room was short)")


class ForgottenOut(BaseModel):
    forgotten: int


# --- the audit log ------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    at: datetime
    key_id: str | None = Field(description="the key's id (key_...), never the key")
    collection_id: str | None
    operation: str = Field(description="the route's name: identify, create_person, delete_person, ...")
    method: str
    path: str
    status: int
    outcome: str = Field(description='"ok", or the error code')
    summary: dict[str, Any] = Field(description="the result: ids and similarities, never photos or keys")
    request_id: str | None
    client: str | None = Field(description="the client's address as the server saw it")

    @classmethod
    def of(cls, e: Any) -> AuditOut:
        return cls(
            id=e.id,
            at=e.at,
            key_id=e.key_id,
            collection_id=e.collection_id,
            operation=e.operation,
            method=e.method,
            path=e.path,
            status=e.status,
            outcome=e.outcome,
            summary=dict(e.summary),
            request_id=e.request_id,
            client=e.client,
        )


class AuditList(BaseModel):
    entries: list[AuditOut]
    next_cursor: str | None


# --- pack migrations ----------------------------------------------------------------------------


class MigrationOut(BaseModel):
    id: str
    collection_id: str
    from_pack: str
    to_pack: str
    state: Literal["running", "blocked", "done", "cancelled"] = Field(
        description="running; blocked (faces failed and drop_unmigratable was not given); done; cancelled"
    )
    total: int = Field(description="faces of the collection now")
    done: int = Field(description="faces embedded again with the new pack")
    failed: dict[str, str] = Field(description="faces that cannot be embedded again, and why")
    rate: float | None = Field(description="faces per second since the start")
    eta_s: float | None = Field(description="seconds left at that rate")
    drop_unmigratable: bool
    result: dict[str, Any] = Field(description="when done: faces switched, dropped, negatives dropped, ...")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, st: Any) -> MigrationOut:
        r = st.record
        return cls(
            id=r.id,
            collection_id=r.collection_id,
            from_pack=r.from_pack,
            to_pack=r.to_pack,
            state=r.state,
            total=r.total,
            done=r.done,
            failed=dict(r.failed),
            rate=st.rate,
            eta_s=st.eta_s,
            drop_unmigratable=r.drop_failed,
            result=dict(r.result),
            created_at=r.created_at,
            updated_at=r.updated_at,
            finished_at=r.finished_at,
        )


class MigrationList(BaseModel):
    migrations: list[MigrationOut]
