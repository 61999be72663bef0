"""The vector index contract: `Hit`, the `VectorIndex` Protocol and input checks shared by backends.

The index is derived from SQL (see ARCHITECTURE.md, "Data and consistency"): one partition per
collection holding face_id -> (person_id, float32 vector) and person_id -> groups. Distances are
Euclidean (not squared). `applied_seq` is the last change-log sequence folded into the index.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from facesearch.domain import DEFAULT_GROUP as DEFAULT_GROUP

IdArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
IdsLike = Sequence[int] | npt.NDArray[np.integer]


@dataclass(frozen=True)
class Hit:
    """One search result: a face of a person in a partition, at a Euclidean distance."""

    partition: int
    face_id: int
    person_id: int
    distance: float


@runtime_checkable
class VectorIndex(Protocol):
    """Partitioned nearest-neighbour index over face embeddings (Euclidean distance)."""

    applied_seq: int

    def add(self, partition: int, face_ids: IdsLike, person_ids: IdsLike, vectors: np.ndarray) -> None:
        """Insert faces; an existing face_id is replaced (upsert)."""
        ...

    def remove_faces(self, partition: int, face_ids: Sequence[int]) -> None:
        """Remove faces; unknown ids are ignored."""
        ...

    def remove_person(self, partition: int, person_id: int) -> None:
        """Remove all faces of a person and its groups."""
        ...

    def set_person_groups(self, partition: int, person_id: int, groups: Iterable[str]) -> None:
        """Replace a person's groups; empty means {"default"}."""
        ...

    def drop_partition(self, partition: int) -> None:
        """Forget a whole partition."""
        ...

    def count(self, partition: int | None = None) -> int:
        """Number of faces in one partition, or in all when None."""
        ...

    def partitions(self) -> list[int]:
        """Known partitions, sorted."""
        ...

    def search(
        self,
        partitions: Sequence[int],
        query: np.ndarray,
        k: int,
        *,
        groups: Collection[str] | None = None,
        unique_persons: bool = False,
        max_distance: float | None = None,
        exact: bool = False,
        templates: bool = False,
    ) -> list[Hit]:
        """Up to k nearest hits over the given partitions, nearest first."""
        ...

    def search_batch(
        self,
        partitions: Sequence[int],
        queries: np.ndarray,
        k: int,
        *,
        groups: Collection[str] | None = None,
        unique_persons: bool = False,
        max_distance: float | None = None,
        exact: bool = False,
        templates: bool = False,
    ) -> list[list[Hit]]:
        """`search` for each row of a 2-D query matrix."""
        ...

    def save(self, directory: Path) -> None:
        """Write an atomic snapshot (including applied_seq) into directory."""
        ...

    def memory_bytes(self) -> int:
        """Approximate resident size of the index data."""
        ...

    def close(self) -> None:
        """Release what the index runs besides its data (threads); called once, at shutdown."""
        ...


class SearchOne:
    """`VectorIndex.search` for a backend's `search_batch`: one query, checked, as a batch of one."""

    def search_batch(
        self,
        partitions: Sequence[int],
        queries: np.ndarray,
        k: int,
        *,
        groups: Collection[str] | None = None,
        unique_persons: bool = False,
        max_distance: float | None = None,
        exact: bool = False,
        templates: bool = False,
    ) -> list[list[Hit]]:
        raise NotImplementedError

    def search(
        self,
        partitions: Sequence[int],
        query: np.ndarray,
        k: int,
        *,
        groups: Collection[str] | None = None,
        unique_persons: bool = False,
        max_distance: float | None = None,
        exact: bool = False,
        templates: bool = False,
    ) -> list[Hit]:
        q = np.asarray(query)
        if q.ndim != 1 and not (q.ndim == 2 and q.shape[0] == 1):
            raise ValueError(f"query must be one vector, got shape {q.shape}")
        return self.search_batch(
            partitions,
            q.reshape(1, -1),
            k,
            groups=groups,
            unique_persons=unique_persons,
            max_distance=max_distance,
            exact=exact,
            templates=templates,
        )[0]


def as_queries(queries: np.ndarray, groups: Collection[str] | None) -> FloatArray | None:
    """Check a `search_batch` call's query matrix and groups; None for no queries at all."""
    if np.ndim(queries) != 2:
        raise ValueError(f"queries must be 2-D, got shape {np.shape(queries)}")
    if np.shape(queries)[0] == 0:
        return None
    if isinstance(groups, str):
        raise TypeError("groups must be a collection of names, not a str")
    return as_vectors(queries)


def as_ids(values: IdsLike, name: str) -> IdArray:
    """Validate a 1-D sequence of non-negative integer ids and return it as int64."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got {arr.dtype}")
    out = arr.astype(np.int64, copy=False)
    if int(out.min()) < 0:
        raise ValueError(f"{name} must be non-negative")
    return out


def as_vectors(vectors: np.ndarray, n: int | None = None) -> FloatArray:
    """Validate a (n, dim) matrix of finite values and return it as C-contiguous float32."""
    arr = np.asarray(vectors)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"vectors must be (n, dim), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"expected {n} vectors, got {arr.shape[0]}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError("vectors must be finite")
    return out


def as_groups(groups: Iterable[str]) -> frozenset[str]:
    """Normalise a person's groups: strings only, empty -> {"default"}."""
    if isinstance(groups, str):
        raise TypeError("groups must be an iterable of names, not a str")
    out = frozenset(groups)
    if not all(isinstance(g, str) for g in out):
        raise TypeError("group names must be str")
    return out or frozenset({DEFAULT_GROUP})


def merge_hits(per_partition: Iterable[list[Hit]], k: int, unique_persons: bool) -> list[Hit]:
    """Merge per-partition hit lists: nearest first, ties by (partition, face_id), dedupe persons."""
    hits = sorted((h for hs in per_partition for h in hs), key=lambda h: (h.distance, h.partition, h.face_id))
    if not unique_persons:
        return hits[:k]
    out: list[Hit] = []
    seen: set[int] = set()
    for h in hits:
        if h.person_id not in seen:
            seen.add(h.person_id)
            out.append(h)
            if len(out) == k:
                break
    return out
