"""Domain types: frozen dataclasses, no HTTP, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

Embedding = npt.NDArray[np.float32]
RGBImage = npt.NDArray[np.uint8]


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

    def iou(self, other: Box) -> float:
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
    id: str
    name: str
    title: str
    description: str
    kind: str  # internal | external | watchlist
    pack: str
    settings: dict[str, Any]
    created_at: datetime
    person_count: int = 0
    face_count: int = 0


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
class QueryFace:
    """A face found in a query photo, as reported back to the caller."""

    box: Box
    score: float
    landmarks: Landmarks
    quality: Quality


@dataclass(frozen=True)
class Match:
    """One candidate of a search, best first."""

    rank: int
    similarity: float
    distance: float
    person: Person
    face_id: str
    collection: str  # the collection's name
    thumbnail: bytes | None = None


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


@dataclass(frozen=True)
class FaceResult:
    """One face of a group photo with its matches (identify-all)."""

    face: QueryFace
    crop: bytes  # JPEG
    matches: tuple[Match, ...]


@dataclass(frozen=True)
class IdentifyAllResult:
    """Every face of a photo: recognised ones with matches, and the unrecognised ones."""

    faces: tuple[FaceResult, ...]
    unrecognized: tuple[FaceResult, ...]
    threshold: float
    searched: int
    query_time_ms: float
    timings: dict[str, float]


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
