"""Small value types the store returns besides the domain dataclasses, and codecs."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from facesearch.domain import Box
from facesearch.errors import ValidationError

#: Change-log operations.
OP_ADD_FACE = "add_face"
OP_REMOVE_FACE = "remove_face"
OP_SET_GROUPS = "set_groups"
OP_REMOVE_PERSON = "remove_person"
OP_DROP_COLLECTION = "drop_collection"
#: Corrections: logged like faces (the index itself has nothing to do for them).
OP_ADD_NEGATIVE = "add_negative"
OP_REMOVE_NEGATIVE = "remove_negative"
OPS = (
    OP_ADD_FACE,
    OP_REMOVE_FACE,
    OP_SET_GROUPS,
    OP_REMOVE_PERSON,
    OP_DROP_COLLECTION,
    OP_ADD_NEGATIVE,
    OP_REMOVE_NEGATIVE,
)

#: The id reported for the implicit default group (real group ids are ``grp_`` + 16 chars).
DEFAULT_GROUP_ID = "grp_default"

ROLES = ("reader", "writer", "admin")


@dataclass(frozen=True)
class Change:
    """One change-log entry, ready for an index to apply (all ids are integer primary keys).

    ``embedding`` is set for ``add_face`` while the face still exists (None once it was
    deleted: a later entry removes it anyway). ``groups`` is the person's full group list
    for ``set_groups`` (as written) and ``add_face`` (current), else None.
    """

    seq: int
    op: str
    collection_id: int
    face_id: int | None
    person_id: int | None
    payload: dict[str, Any] | None
    embedding: npt.NDArray[np.float32] | None = field(compare=False)
    groups: tuple[str, ...] | None


@dataclass(frozen=True, eq=False)
class NewFace:
    """A face to store: what the pipeline measured, ready for ``add_face``/``create_person``."""

    pack: str
    embedding: npt.NDArray[np.float32]
    box: Box
    quality: dict[str, Any]
    thumbnail: bytes | None = None
    content_hash: str | None = None
    source: bytes | None = None  # the sealed face source (keep_source), stored beside the face


@dataclass(frozen=True)
class PersonFace:
    """A face to store for the person with this external id (created, with ``name``, at its
    first face): one item of ``enroll_faces``."""

    external_id: str
    name: str
    face: NewFace


class FaceBatch(NamedTuple):
    """Faces of one collection for a full index rebuild; unpacks as a 4-tuple."""

    collection_id: int
    face_ids: npt.NDArray[np.int64]
    person_ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]  # shape (n, dim)


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored: never the key itself, only what identifies and limits it."""

    id: str
    name: str
    prefix: str
    role: str
    collections: tuple[str, ...] | None  # collection ids (col_...); None: every collection
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    #: (id, current name) of the key's collections that still exist; None when not looked up
    #: (checking a key on the request path does not read names) or the key is not limited.
    reaches: tuple[tuple[str, str], ...] | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, collection_id: str) -> bool:
        """Whether the key may touch the collection with that id (``col_...``)."""
        return self.collections is None or collection_id in self.collections


def encode_embedding(vector: npt.ArrayLike) -> tuple[bytes, int]:
    """Little-endian float32 bytes and dimension of a 1-D finite vector."""
    arr = np.asarray(vector, dtype="<f4")
    if arr.ndim != 1 or arr.size == 0:
        raise ValidationError("embedding must be a non-empty 1-D vector", field="embedding")
    if not bool(np.all(np.isfinite(arr))):
        raise ValidationError("embedding has NaN or infinite values", field="embedding")
    return arr.tobytes(), int(arr.size)


def decode_embedding(data: bytes) -> npt.NDArray[np.float32]:
    """The float32 vector stored by ``encode_embedding`` (a fresh, writable array)."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def decode_embeddings(blobs: list[bytes], dim: int) -> npt.NDArray[np.float32]:
    """Stack stored vectors of one dimension into an (n, dim) float32 matrix."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


def encode_cursor(last_id: int) -> str:
    """An opaque keyset cursor pointing after ``last_id``."""
    return base64.urlsafe_b64encode(f"k{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor from ``encode_cursor`` points after; ValidationError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("k"):
            raise ValueError(raw)
        value = int(raw[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ValidationError("invalid cursor", field="cursor") from None
    if value < 0:
        raise ValidationError("invalid cursor", field="cursor")
    return value
