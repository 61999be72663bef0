"""Shared machinery of the in-process backends: partitions, locking, query planning, snapshots.

Locking: searches (and snapshot saves) share a read lock, mutations take it exclusively. faiss
and hnswlib release the GIL while they scan, so two searches of two threads run on two cores at
once; with one exclusive lock they queued behind each other (2 threads x exact identify-like
searches over 200k faces: 0.4-0.7x the one-thread rate with the exclusive lock, 0.8-1.8x
without, on two busy shared cores), and a snapshot save (seconds at 1M faces) no longer stops
searches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Self

import faiss
import numpy as np

from facesearch.index import snapshot
from facesearch.index._store import Candidates, PartitionStore, omp_threads
from facesearch.index.base import (
    FloatArray,
    Hit,
    IdArray,
    IdsLike,
    SearchOne,
    as_groups,
    as_ids,
    as_queries,
    as_vectors,
    merge_hits,
)

# (distance, face_id, person_id) rows of one partition for one query, nearest first.
Raw = list[tuple[float, int, int]]

_UNIQUE_START = 4  # unique_persons: first ask for k * this many faces, then grow geometrically
_UNIQUE_GROWTH = 4
#: With person templates, the persons whose nearest faces are nearest are re-scored by template.
TEMPLATE_CANDIDATES = 16


def first_per_person(person_ids: IdArray) -> IdArray:
    """Positions of the first occurrence of each person in an ordered array."""
    _, first = np.unique(person_ids, return_index=True)
    return np.sort(first).astype(np.int64)


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers (no writer starves).

    The writer may re-enter `write` and `read`; a reader must not ask for `write`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._depth += 1
            else:
                while self._writer is not None or self._waiting:
                    self._cond.wait()
                self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                if self._writer == me:
                    self._depth -= 1
                else:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._depth += 1
            else:
                self._waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                self._writer, self._depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._writer = None
                    self._cond.notify_all()


class PartitionedIndex(SearchOne):
    """In-memory partitions of exact data; subclasses add a fast candidate source per partition."""

    backend = "exact"

    def __init__(self) -> None:
        self.applied_seq = 0
        self._parts: dict[int, PartitionStore] = {}
        self._lock = RWLock()
        self._save_lock = threading.Lock()  # one snapshot writer at a time

    # ---- hooks for subclasses ----------------------------------------------------------------
    def _on_upsert(self, partition: int, store: PartitionStore, rows: IdArray) -> None:
        """Called after faces were written to `rows` of the partition."""

    def _on_remove(self, partition: int, face_ids: list[int]) -> None:
        """Called after faces were removed from the partition."""

    def _on_drop(self, partition: int) -> None:
        """Called after a partition was dropped."""

    def _fast_candidates(self, partition: int, store: PartitionStore, query: FloatArray) -> Candidates | None:
        """An approximate candidate source for unfiltered search, or None for the exact scan."""
        return None

    def _fast_batch(
        self, partition: int, store: PartitionStore, queries: FloatArray, kk: int
    ) -> list[tuple[FloatArray, IdArray]] | None:
        """Approximate top-kk for many queries at once, or None for the exact scan."""
        return None

    def _extra_memory(self) -> int:
        return 0

    def _save_extra(self, gen_dir: Path) -> dict[str, Any]:
        return {}

    def _load_extra(self, gen_dir: Path, meta: dict[str, Any]) -> None:
        """Restore backend state from a snapshot whose exact data is already loaded."""

    # ---- mutations ---------------------------------------------------------------------------
    def add(self, partition: int, face_ids: IdsLike, person_ids: IdsLike, vectors: np.ndarray) -> None:
        fids = as_ids(face_ids, "face_ids")
        pids = as_ids(person_ids, "person_ids")
        if len(pids) != len(fids):
            raise ValueError(f"{len(fids)} face_ids but {len(pids)} person_ids")
        if len(fids) == 0:
            return
        vecs = as_vectors(vectors, len(fids))
        with self._lock.write():
            store = self._parts.get(partition)
            if store is None:
                store = self._parts[partition] = PartitionStore()
            store.check_dim(vecs.shape[1])
            rows = store.upsert(fids, pids, vecs)
            self._on_upsert(partition, store, rows)

    def remove_faces(self, partition: int, face_ids: Sequence[int]) -> None:
        ids = [int(f) for f in face_ids]
        with self._lock.write():
            store = self._parts.get(partition)
            if store is None:
                return
            removed = store.remove(ids)
            if removed:
                self._on_remove(partition, removed)

    def remove_person(self, partition: int, person_id: int) -> None:
        with self._lock.write():
            store = self._parts.get(partition)
            if store is None:
                return
            removed = store.remove(store.faces_of(int(person_id)))
            store.set_groups(int(person_id), as_groups(()))
            if removed:
                self._on_remove(partition, removed)

    def set_person_groups(self, partition: int, person_id: int, groups: Iterable[str]) -> None:
        names = as_groups(groups)
        with self._lock.write():
            store = self._parts.get(partition)
            if store is None:
                store = self._parts[partition] = PartitionStore()
            store.set_groups(int(person_id), names)

    def drop_partition(self, partition: int) -> None:
        with self._lock.write():
            if self._parts.pop(partition, None) is not None:
                self._on_drop(partition)

    # ---- reads -------------------------------------------------------------------------------
    def count(self, partition: int | None = None) -> int:
        with self._lock.read():
            if partition is None:
                return sum(s.n for s in self._parts.values())
            store = self._parts.get(partition)
            return store.n if store is not None else 0

    def partitions(self) -> list[int]:
        with self._lock.read():
            return sorted(self._parts)

    def close(self) -> None:
        """Nothing to release here (backends with threads override it)."""

    def memory_bytes(self) -> int:
        with self._lock.read():
            return sum(s.memory_bytes() for s in self._parts.values()) + self._extra_memory()

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
        qs = as_queries(queries, groups)
        if qs is None:
            return []
        nq = qs.shape[0]
        per_query: list[list[list[Hit]]] = [[] for _ in range(nq)]
        if k <= 0:
            return [[] for _ in range(nq)]
        for part in dict.fromkeys(int(p) for p in partitions):
            with self._lock.read():
                store = self._parts.get(part)
                if store is None or store.n == 0:
                    continue
                store.check_dim(qs.shape[1])
                raws = self._search_partition(
                    part,
                    store,
                    qs,
                    k,
                    groups,
                    unique_persons,
                    max_distance,
                    exact,
                    templates and unique_persons,
                )
            for qi, raw in enumerate(raws):
                per_query[qi].append([Hit(part, f, p, d) for d, f, p in raw])
        return [merge_hits(hs, k, unique_persons) for hs in per_query]

    # ---- query planning ----------------------------------------------------------------------
    def _search_partition(
        self,
        part: int,
        store: PartitionStore,
        qs: FloatArray,
        k: int,
        groups: Collection[str] | None,
        unique: bool,
        max_d: float | None,
        exact: bool,
        templates: bool = False,
    ) -> list[Raw]:
        if groups is None and not unique:
            kk = min(k, store.n)
            batch = None if exact else self._fast_batch(part, store, qs, kk)
            if batch is None:
                batch = _exact_batch(store, qs, kk)
            return [_finish(store, q, d, r, k, False, max_d) for q, (d, r) in zip(qs, batch, strict=True)]
        rows: IdArray | None = None
        subset: Callable[[FloatArray], Candidates] | None = None
        if groups is not None:
            rows = np.flatnonzero(store.member_mask(groups)).astype(np.int64)
            if rows.size == 0:
                return [[] for _ in range(len(qs))]
            subset = store.subset_scanner(rows)
        limit = store.n if rows is None else len(rows)
        out: list[Raw] = []
        for q in qs:
            if subset is not None:
                cands = subset(q)
            else:
                fast = None if exact else self._fast_candidates(part, store, q)
                cands = fast if fast is not None else store.exact_candidates(q)
            if templates:
                # Persons are scored by their template, which can be nearer than their best face:
                # candidates are the TEMPLATE_CANDIDATES persons with the nearest faces, whatever
                # the cut-off, and the cut-off applies to the template distance.
                d, r = _collect(store, cands, max(k, TEMPLATE_CANDIDATES), limit, True, None)
                out.append(_finish(store, q, d, r, k, True, max_d, templates=True))
                continue
            d, r = _collect(store, cands, k, limit, unique, max_d)
            out.append(_finish(store, q, d, r, k, unique, max_d))
        return out

    # ---- snapshots ---------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        with self._save_lock, self._lock.read():
            parts = {p: s for p, s in self._parts.items()}
            snapshot.write(
                Path(directory),
                backend=self.backend,
                applied_seq=self.applied_seq,
                parts=parts,
                save_extra=self._save_extra,
            )

    @classmethod
    def load(cls, directory: Path, **kwargs: Any) -> Self:
        """Read a snapshot written by `save`; raises on a missing or unreadable snapshot."""
        index = cls(**kwargs)
        gen_dir, meta, parts = snapshot.read(Path(directory))
        with index._lock.write():
            index._parts = parts
            index.applied_seq = int(meta["applied_seq"])
            index._load_extra(gen_dir, meta)
        return index


def _exact_batch(store: PartitionStore, qs: FloatArray, kk: int) -> list[tuple[FloatArray, IdArray]]:
    if len(qs) == 1:
        return [store.exact_candidates(qs[0])(kk)]
    with omp_threads(1) if len(qs) < 20 else nullcontext():
        dist, idx = faiss.knn(qs, store.vectors, kk)
    return [(d[i >= 0], i[i >= 0].astype(np.int64)) for d, i in zip(dist, idx, strict=True)]


def _collect(
    store: PartitionStore, cands: Candidates, k: int, limit: int, unique: bool, max_d: float | None
) -> tuple[FloatArray, IdArray]:
    """Ask the source for enough candidates: k faces, or k distinct persons when unique."""
    kk = min(limit, k * _UNIQUE_START if unique else k)
    bound = None if max_d is None else (max_d * 1.001) ** 2 + 1e-6
    while True:
        d, rows = cands(kk)
        if not unique or len(rows) < kk or kk >= limit:
            return d, rows
        if len(first_per_person(store.person_ids[rows])) >= k:
            return d, rows
        if bound is not None and len(d) and float(d[-1]) > bound:
            return d, rows
        kk = min(limit, kk * _UNIQUE_GROWTH)


def _finish(
    store: PartitionStore,
    q: FloatArray,
    d_sq: FloatArray,
    rows: IdArray,
    k: int,
    unique: bool,
    max_d: float | None,
    *,
    templates: bool = False,
) -> Raw:
    """Dedupe persons, recompute exact distances for the chosen rows, cut at k and max_distance.

    With ``templates`` a person's distance is that of their template (their best face's row is
    kept as the hit's face); a one-face person's template is that face."""
    if unique:
        rows = rows[first_per_person(store.person_ids[rows])]
    rows = rows[: max(k, TEMPLATE_CANDIDATES) + 8] if templates else rows[: k + 8]
    if rows.size == 0:
        return []
    sq = store.exact_sq(q, rows)
    if templates:
        by_template = store.template_sq(q, store.person_ids[rows])
        sq = np.where(np.isnan(by_template), sq, by_template)
    dist = np.sqrt(np.maximum(sq, 0.0))
    order = np.lexsort((store.face_ids[rows], dist))[:k]
    rows, dist = rows[order], dist[order]
    if max_d is not None:
        keep = dist <= max_d
        rows, dist = rows[keep], dist[keep]
    fids = store.face_ids[rows].tolist()
    pids = store.person_ids[rows].tolist()
    return list(zip(dist.astype(float).tolist(), fids, pids, strict=True))
