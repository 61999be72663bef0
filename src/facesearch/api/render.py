"""Domain objects as the JSON the API returns (shapes documented in ``schemas.py``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from facesearch.domain import (
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
from facesearch.storage.records import ApiKeyRecord

Json = dict[str, Any]


def b64(data: bytes | None) -> str | None:
    """Bytes as standard base64 text (None stays None)."""
    return None if data is None else base64.b64encode(data).decode("ascii")


def collection(c: Collection) -> Json:
    return {
        "id": c.id,
        "name": c.name,
        "title": c.title,
        "description": c.description,
        "kind": c.kind,
        "pack": c.pack,
        "settings": dict(c.settings),
        "person_count": c.person_count,
        "face_count": c.face_count,
        "created_at": c.created_at.isoformat(),
    }


def face(f: Face) -> Json:
    return {
        "id": f.id,
        "person_id": f.person_id,
        "collection_id": f.collection_id,
        "pack": f.pack,
        "box": f.box.to_dict(),
        "quality": dict(f.quality),
        "created_at": f.created_at.isoformat(),
        "thumbnail_url": f"/v1/faces/{f.id}/image",
    }


def person(p: Person, *, with_faces: bool = True) -> Json:
    return {
        "id": p.id,
        "collection_id": p.collection_id,
        "external_id": p.external_id,
        "name": p.name,
        "metadata": dict(p.metadata),
        "groups": list(p.groups),
        "created_at": p.created_at.isoformat(),
        "updated_at": p.updated_at.isoformat(),
        "faces": [face(f) for f in p.faces] if with_faces else None,
    }


def group(g: Group) -> Json:
    return {
        "id": g.id,
        "collection_id": g.collection_id,
        "name": g.name,
        "person_count": g.person_count,
        "created_at": g.created_at.isoformat(),
    }


def query_face(q: QueryFace) -> Json:
    return {
        "box": q.box.to_dict(),
        "landmarks": q.landmarks.to_list(),
        "detection_score": round(q.score, 3),
        "quality": q.quality.to_dict(),
    }


def match(m: Match) -> Json:
    return {
        "rank": m.rank,
        "similarity": m.similarity,
        "distance": m.distance,
        "person_id": m.person.id,
        "external_id": m.person.external_id,
        "name": m.person.name,
        "metadata": dict(m.person.metadata),
        "groups": list(m.person.groups),
        "face_id": m.face_id,
        "collection": m.collection,
        "thumbnail": b64(m.thumbnail),
    }


def timed(searched: int, query_time_ms: float, timings: dict[str, float]) -> Json:
    """The fields every search response carries; missing stages read 0."""
    stages = {k: 0.0 for k in ("decode_ms", "detect_ms", "embed_ms", "search_ms")}
    stages.update({k: round(float(v), 3) for k, v in timings.items()})
    return {"searched": searched, "query_time_ms": query_time_ms, "timings": stages}


def identify(r: IdentifyResult) -> Json:
    return {
        "matches": [match(m) for m in r.matches],
        "face": query_face(r.face),
        "threshold": r.threshold,
        "auto_enrolled_face_id": r.auto_enrolled_face_id,
        "created_person_id": r.created_person_id,
        **timed(r.searched, r.query_time_ms, r.timings),
    }


def face_result(f: FaceResult) -> Json:
    return {"face": query_face(f.face), "crop": b64(f.crop), "matches": [match(m) for m in f.matches]}


def identify_all(r: IdentifyAllResult) -> Json:
    return {
        "faces": [face_result(f) for f in r.faces],
        "unrecognized": [face_result(f) for f in r.unrecognized],
        "threshold": r.threshold,
        **timed(r.searched, r.query_time_ms, r.timings),
    }


def detect(faces: Iterable[QueryFace], query_time_ms: float, timings: dict[str, float]) -> Json:
    return {"faces": [query_face(q) for q in faces], **timed(0, query_time_ms, timings)}


def verify(r: VerifyResult) -> Json:
    return {
        "similarity": r.similarity,
        "distance": r.distance,
        "match": r.match,
        "threshold": r.threshold,
        "faces": [query_face(q) for q in r.faces],
        **timed(r.searched, r.query_time_ms, r.timings),
    }


def api_key(k: ApiKeyRecord) -> Json:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "role": k.role,
        "collections": list(k.collections) if k.collections is not None else None,
        "created_at": k.created_at.isoformat(),
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


def face_image(f: Face, data: bytes) -> Json:
    return {"file_id": f.id, "file_name": f"{f.id}.jpg", "file_type": "image/jpeg", "file_base64": b64(data)}
