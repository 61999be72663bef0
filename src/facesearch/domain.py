"""Domain types (frozen dataclasses, no HTTP, no SQL) and the rules every layer shares.

The rules live here once: what a collection may be called, its kinds, its settings with
their defaults and ranges, and the implicit group of persons in no group. The service
applies them; storage and the index import them rather than keeping copies.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facesearch.errors import FaceLimitReached, ValidationError

Embedding = npt.NDArray[np.float32]
RGBImage = npt.NDArray[np.uint8]

#: Which face of a photo with several is used when one is wanted.
FaceChoice = Literal["central", "largest"]

#: Kinds of collection (a label for people; it changes no behaviour).
KINDS = ("internal", "external", "watchlist")
#: The implicit group of every person that belongs to no group.
DEFAULT_GROUP = "default"

COLLECTION_NAME_MAX = 64
_COLLECTION_NAME_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{COLLECTION_NAME_MAX - 1}}}$")


def check_collection_name(name: Any) -> str:
    """A valid collection name, or ValidationError: 1-64 letters, digits, '.', '_' or '-',
    starting with a letter or digit, and not 'col_' (the prefix of collection ids)."""
    if not isinstance(name, str) or not _COLLECTION_NAME_RE.match(name) or name.startswith("col_"):
        raise ValidationError(
            f"name must be 1-{COLLECTION_NAME_MAX} letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (and not 'col_')",
            field="name",
        )
    return name


def check_kind(kind: Any) -> str:
    """A valid collection kind, or ValidationError."""
    if kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return str(kind)


#: Characters a name may not hold: control characters (NUL included) and the bidirectional
#: overrides and isolates that make a name display as something else.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def check_label(value: Any, field: str, max_len: int, *, allow_empty: bool = True, comma: bool = True) -> str:
    """A name, external id or group name: text trimmed of surrounding white space, at most
    ``max_len`` characters, without control characters or bidi overrides (and without commas when
    ``comma`` is False: lists of names are split on commas); ValidationError otherwise."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    clean = value.strip()
    if len(clean) > max_len or (not allow_empty and not clean):
        raise ValidationError(f"{field} must be 1 to {max_len} characters", field=field)
    for ch in clean:
        if ch in _BIDI or (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0):
            raise ValidationError(
                f"{field} holds a control or text-direction character (U+{ord(ch):04X})", field=field
            )
    if not comma and "," in clean:
        raise ValidationError(
            f"{field} may not hold a comma (lists of names are comma-separated)", field=field
        )
    return clean


#: Limits of what a person carries, checked before anything is written (so nothing stored can fail
#: to render): metadata as serialised JSON, its nesting depth and its keys at every level, and groups.
METADATA_MAX_BYTES = 64 * 1024
METADATA_MAX_DEPTH = 16
METADATA_MAX_KEYS = 1000
GROUPS_MAX = 100


def check_metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    """A person's metadata: a JSON object of at most 64 KiB serialised, nested at most 16 deep,
    with at most 1,000 keys in all, string keys and finite numbers; ValidationError otherwise."""
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object", field=field)
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: a hostile depth cannot exhaust the interpreter's stack
        node, depth = stack.pop()
        if isinstance(node, dict | list) and depth > METADATA_MAX_DEPTH:
            raise ValidationError(
                f"{field} is nested deeper than {METADATA_MAX_DEPTH} levels",
                field=field,
                details={"limit": METADATA_MAX_DEPTH},
            )
        if isinstance(node, dict):
            keys += len(node)
            if keys > METADATA_MAX_KEYS:
                raise ValidationError(
                    f"{field} has more than {METADATA_MAX_KEYS} keys",
                    field=field,
                    details={"limit": METADATA_MAX_KEYS},
                )
            for k, v in node.items():
                if not isinstance(k, str):
                    raise ValidationError(f"{field} keys must be strings", field=field)
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValidationError(f"{field} holds a number that is not finite", field=field)
        elif node is not None and not isinstance(node, str | int | float | bool):
            raise ValidationError(f"{field} holds a value that is not JSON", field=field)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise ValidationError(
            f"{field} is {size:,} bytes as JSON, over the limit of {METADATA_MAX_BYTES:,}",
            field=field,
            details={"limit": METADATA_MAX_BYTES, "bytes": size},
        )
    return dict(value)


def face_limit_reached(person: str, faces: int, limit: int) -> FaceLimitReached:
    """The error for a person who already has the collection's ``max_faces_per_person`` faces."""
    return FaceLimitReached(
        f"this person already has {faces} faces, the collection's limit (max_faces_per_person)",
        details={"person": person, "faces": faces, "max_faces_per_person": limit},
    )


def check_group_count(groups: Any, field: str = "groups") -> list[Any]:
    """Group names as a list of at most ``GROUPS_MAX`` (each name is checked where it is stored)."""
    if isinstance(groups, str | bytes) or not hasattr(groups, "__iter__"):
        raise ValidationError(f"{field} must be a list of group names", field=field)
    names = list(groups)
    if len(names) > GROUPS_MAX:
        raise ValidationError(
            f"at most {GROUPS_MAX} groups per person ({len(names):,} given)",
            field=field,
            details={"limit": GROUPS_MAX},
        )
    return names


#: Collection settings and their defaults. The match cut-off of a search that names none is
#: ``default_threshold`` when the collection sets one (a similarity: a per-comparison rate), else
#: ``max_false_positive_rate`` (the chance that a stranger matches anyone in the searched gallery,
#: whatever its size; used with the pack's calibration table). ``person_score`` is how a person
#: with several faces is scored when results are one per person: "template" (the distance to the
#: mean of their unit embeddings, renormalised) or "best_face" (their nearest face).
COLLECTION_SETTINGS: dict[str, Any] = {
    "default_threshold": None,
    "max_false_positive_rate": 0.01,
    "auto_enroll": False,
    "auto_enroll_threshold": 0.9,
    "max_faces_per_person": 20,
    "person_score": "template",
    "remember_unknown": False,
    "unknown_retention_days": 30,
    "keep_source": False,
}
PERSON_SCORES = ("template", "best_face")


def _check_unit(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValidationError(f"{key} must be a number from 0 to 1", field=key)
    return float(value)


def check_collection_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Collection settings with their types and ranges checked; unknown keys refused.

    A None value is kept (it means "back to the default" when merged into stored settings).
    """
    if settings is not None and not isinstance(settings, dict):
        raise ValidationError("settings must be a JSON object", field="settings")
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if key not in COLLECTION_SETTINGS:
            raise ValidationError(
                f"unknown collection setting {key!r}; known: {', '.join(COLLECTION_SETTINGS)}", field=key
            )
        if value is None:
            out[key] = None
        elif key in ("default_threshold", "auto_enroll_threshold"):
            out[key] = _check_unit(value, key)
        elif key == "max_false_positive_rate":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
                raise ValidationError(f"{key} must be a number between 0 and 1 (both excluded)", field=key)
            out[key] = float(value)
        elif key == "auto_enroll":
            if not isinstance(value, bool):
                raise ValidationError("auto_enroll must be true or false", field=key)
            out[key] = value
        elif key == "max_faces_per_person":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise ValidationError("max_faces_per_person must be an integer from 1 to 1000", field=key)
            out[key] = value
        elif key in ("remember_unknown", "keep_source"):
            if not isinstance(value, bool):
                raise ValidationError(f"{key} must be true or false", field=key)
            out[key] = value
        elif key == "unknown_retention_days":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
                raise ValidationError("unknown_retention_days must be an integer from 1 to 3650", field=key)
            out[key] = value
        elif key == "person_score":
            if value not in PERSON_SCORES:
                raise ValidationError(f"person_score must be one of {', '.join(PERSON_SCORES)}", field=key)
            out[key] = value
    return out


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box in pixels of the (orientation-corrected) image."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.width / 2.0, self.top + self.height / 2.0)

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def iou(self, other: Box) -> float:  # used by the detection accuracy tests
        """Intersection over union with another box."""
        ix = max(0, min(self.right, other.right) - max(self.left, other.left))
        iy = max(0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Landmarks:
    """Five facial points in image pixels, in dlib's 5-point order: the subject's left
    eye outer and inner corners (on the image's right), the subject's right eye outer
    and inner corners (on the image's left), then the base of the nose."""

    points: tuple[tuple[float, float], ...]

    def to_list(self) -> list[list[float]]:
        return [[round(x, 1), round(y, 1)] for x, y in self.points]


@dataclass(frozen=True)
class Detection:
    """One detected face: box, detector score and landmarks."""

    box: Box
    score: float
    landmarks: Landmarks


@dataclass(frozen=True)
class Quality:
    """Measurements of one detected face; they feed the enrolment quality gate."""

    face_size: int  # the smaller side of the box, in pixels
    border_distance: int  # pixels from the box to the nearest image edge (negative: outside)
    cut_off: bool  # the box reaches past the image edge
    yaw: float  # degrees, estimated from landmarks; positive = subject turned to their left
    pitch: float  # degrees, rough estimate from landmarks; positive = looking down
    sharpness: float  # variance of the Laplacian of the grey face crop
    brightness: float  # mean grey level of the face crop, 0-255

    def to_dict(self) -> dict[str, Any]:
        return {
            "face_size": self.face_size,
            "border_distance": self.border_distance,
            "cut_off": self.cut_off,
            "yaw": round(self.yaw, 1),
            "pitch": round(self.pitch, 1),
            "sharpness": round(self.sharpness, 1),
            "brightness": round(self.brightness, 1),
        }


@dataclass(frozen=True)
class FaceObservation:
    """A face found in a photo and turned into an embedding by a model pack."""

    detection: Detection
    quality: Quality
    embedding: Embedding
    chip: RGBImage  # the aligned face, used for the stored thumbnail
    pack: str


@dataclass(frozen=True)
class Collection:
    """A collection as read once per request: public id, name, model pack and settings.

    ``pk`` is the store's integer key, which is also the collection's partition in the
    vector index (never shown to API callers). The counts are None when the collection
    was read without counting (the search path).
    """

    id: str
    name: str
    title: str
    description: str
    kind: str  # one of KINDS
    pack: str
    settings: dict[str, Any]
    created_at: datetime
    person_count: int | None = None
    face_count: int | None = None
    pk: int = field(default=0, compare=False)

    def setting(self, key: str) -> Any:
        """A setting of this collection, else its default (``COLLECTION_SETTINGS``)."""
        value = self.settings.get(key)
        return COLLECTION_SETTINGS[key] if value is None else value


@dataclass(frozen=True)
class Group:
    id: str
    collection_id: str
    name: str
    created_at: datetime
    person_count: int = 0


@dataclass(frozen=True)
class Face:
    """A stored reference face of a person (embedding kept in SQL, not here)."""

    id: str
    person_id: str
    collection_id: str
    pack: str
    box: Box
    quality: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Person:
    id: str
    collection_id: str
    external_id: str
    name: str
    metadata: dict[str, Any]
    groups: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    faces: tuple[Face, ...] = field(default=())


@dataclass(frozen=True)
class Negative:
    """ "This face is not this person": never matched to ``person_id`` (see ``corrections.py``)."""

    id: str
    person_id: str
    collection_id: str
    source_face_id: str | None  # the stored face it was taken from, when it was one
    created_at: datetime


@dataclass(frozen=True)
class UnknownFace:
    """A face a search matched to nobody, remembered (``remember_unknown``) for clustering."""

    id: str
    collection_id: str
    box: Box
    quality: dict[str, Any]
    source: str  # "identify" or "identify_all"
    request_id: str | None
    seen_at: datetime


@dataclass(frozen=True)
class UnknownCluster:
    """Remembered unknown faces that are likely one person. ``id`` is the id of its oldest
    face (stable while that face is kept); ``samples`` are the ids of its newest faces."""

    id: str
    size: int
    first_seen: datetime
    last_seen: datetime
    members: tuple[str, ...]
    samples: tuple[str, ...]


@dataclass(frozen=True)
class QueryFace:
    """A face found in a query photo, as reported back to the caller."""

    box: Box
    score: float
    landmarks: Landmarks
    quality: Quality


@dataclass(frozen=True)
class Match:
    """One candidate of a search, best first.

    ``false_match_rate``: the chance that one comparison with a stranger's face scores at least
    this well (from the pack's calibration; None without one); ``expected_false_matches``: that
    rate times the faces searched, the number of strangers in a gallery this size expected to
    score as high.
    """

    rank: int
    similarity: float
    distance: float
    person: Person
    face_id: str
    collection: str  # the collection's name
    thumbnail: bytes | None = None
    false_match_rate: float | None = None
    expected_false_matches: float | None = None


@dataclass(frozen=True)
class AmbiguousMatch:
    """A person of a different-people pair that matched a query face together with the other."""

    person: Person
    similarity: float
    distance: float


@dataclass(frozen=True)
class ThresholdRule:
    """Which rule set a search's cut-off: ``kind`` "threshold" (a similarity) or
    "max_false_positive_rate", its ``value``, and who set it: "request", "collection" or "pack"."""

    kind: str
    value: float
    set_by: str


@dataclass(frozen=True)
class IdentifyResult:
    """The answer to "who is this?"."""

    matches: tuple[Match, ...]
    face: QueryFace
    threshold: float
    searched: int
    query_time_ms: float
    timings: dict[str, float]
    auto_enrolled_face_id: str | None = None
    created_person_id: str | None = None
    threshold_rule: ThresholdRule | None = None
    #: Persons recorded as different people that both pass the cut-off for this face (best first;
    #: a partner may be past ``top_k``): the answer is one of them and the service cannot tell
    #: which. Empty when there is no such pair.
    ambiguous: tuple[AmbiguousMatch, ...] = ()
    #: How many persons a "not this person" correction kept out of the matches.
    vetoed: int = 0
    #: The id of the remembered unknown face, when nobody matched and the collection remembers them.
    unknown_id: str | None = None


@dataclass(frozen=True)
class FaceResult:
    """One face of a group photo with its matches (identify-all)."""

    face: QueryFace
    crop: bytes  # JPEG
    matches: tuple[Match, ...]
    ambiguous: tuple[AmbiguousMatch, ...] = ()  # as in IdentifyResult
    vetoed: int = 0  # as in IdentifyResult
    unknown_id: str | None = None  # the remembered unknown face (remember_unknown)


@dataclass(frozen=True)
class IdentifyAllResult:
    """Every face of a photo: recognised ones with matches, and the unrecognised ones."""

    faces: tuple[FaceResult, ...]
    unrecognized: tuple[FaceResult, ...]
    threshold: float
    searched: int
    query_time_ms: float
    timings: dict[str, float]
    threshold_rule: ThresholdRule | None = None
    #: The smallest face (original pixels) the scan of this photo could find: min_face_size,
    #: or more when the photo is too large to scan that finely within the detector's budget.
    smallest_face_size: int | None = None


@dataclass(frozen=True)
class DetectResult:
    """Every face of a photo (none: an empty tuple) and how finely the photo was scanned."""

    faces: tuple[QueryFace, ...]
    timings: dict[str, float]
    smallest_face_size: int | None = None  # as in IdentifyAllResult


@dataclass(frozen=True)
class VerifyResult:
    """A 1:1 comparison."""

    similarity: float
    distance: float
    match: bool
    threshold: float
    faces: tuple[QueryFace, ...]
    query_time_ms: float
    searched: int = 0  # reference faces compared
    timings: dict[str, float] = field(default_factory=dict)
