"""Milvus as the vector index (``milvus://host:port``), behind the same `VectorIndex` Protocol.

For galleries that outgrow one machine's memory, and for several API processes sharing one index.

Layout (only what Milvus 2.3 and the current Milvus Distributed share: partition keys, ARRAY
fields with ``array_contains_any``, HNSW over L2, insert, delete by primary key, filtered query
and search, ``count(*)``; no upsert, whose 2.3 implementation lost rows of a partition-key
collection when tried here):

- one Milvus collection per vector dimension, ``{prefix}_d{dim}``, whose partition key is the
  facesearch collection (the index's ``partition``); a row per face: ``pk`` (partition << 40 |
  face_id), ``partition``, ``face_id``, ``person_id``, ``groups`` (the person's groups, an ARRAY
  of VARCHAR filtered with ``array_contains_any``) and ``vector`` (HNSW, L2);
- ``{prefix}_meta``: the index's ``generation`` (a random name given when the meta collection is
  created) and each partition's dimension (Milvus requires a vector field in every collection:
  a 2-d zero vector).

Several API processes share one Milvus: each brings the index up to date before it searches, but
only one at a time applies the change log (under the database's index lock, see
``IndexFollower``), in log order. How far it got (``applied_seq``) is kept in the database, with
the generation it applies to, so every process reads it at once and an index that was dropped
(a new generation) is rebuilt from SQL. Milvus makes a write visible at its next time tick
(~0.2 s): the writer then waits for it (`barrier`, one ``Strong`` query per collection) so its own
next search sees the write (read-your-writes); other processes see it within that tick; the
reads an apply depends on (a person's rows, to rewrite their groups) are ``Strong``; searches run
at ``Bounded`` consistency and never wait.

Milvus returns squared L2 distances for the faces it found; person-level dedupe (Milvus 2.3 has
no group-by), the groups filter, person templates and ``max_distance`` are applied here, as in
the in-process index. ``exact=True`` asks HNSW with a wide beam (``exact_ef``) and re-ranks the
faces it returns by their exact distance: not a full scan.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from facesearch.errors import IndexUnavailable
from facesearch.index._common import TEMPLATE_CANDIDATES
from facesearch.index.base import (
    FloatArray,
    Hit,
    IdsLike,
    SearchOne,
    as_groups,
    as_ids,
    as_queries,
    as_vectors,
    merge_hits,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_FACE_BITS = 40  # pk = partition << 40 | face_id
_MAX_FACE_ID = (1 << _FACE_BITS) - 1
_MAX_PARTITION = (1 << (63 - _FACE_BITS)) - 1
_MAX_TOPK = 16_384  # Milvus's limit on one search's results
#: How long a partition's face count is reused (it sizes the gallery-aware threshold; another
#: process's writes show in it after at most this long).
COUNT_TTL_S = 1.0
#: How long a load waits for the index of a collection another process is creating.
LOAD_WAIT_S = 30.0
_BATCH = 4_000  # rows per insert call (704-d: 11 MB, well under gRPC's 64 MB)
_QUERY_BATCH = 16_000  # rows per query page
_MAX_GROUPS = 128  # ARRAY capacity: a person is in at most GROUPS_MAX (100) groups
_GROUP_BYTES = 512  # UTF-8 bytes of one group name (the database holds names of 100 characters)
_UNIQUE_START = 4
_UNIQUE_GROWTH = 4
_PARAMS = {"prefix", "m", "ef_construction", "ef", "exact_ef", "timeout", "secure", "shards"}
#: The token (``user:password`` or an API key) is read from this variable, never from the URL.
TOKEN_ENV = "FACESEARCH_MILVUS_TOKEN"


def _expr_strings(values: Iterable[str]) -> str:
    """A Milvus list literal of strings: quotes and backslashes escaped as in JSON, every other
    character as it is (Milvus reads no \\u escapes of characters beyond the BMP)."""
    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def _ints(values: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


class MilvusIndex(SearchOne):
    """A `VectorIndex` kept in a Milvus server or cluster (see the module docstring)."""

    backend = "milvus"
    #: Shared by every process of a deployment: the follower applies the log under a lock.
    shared = True

    def __init__(
        self,
        uri: str,
        *,
        prefix: str = "facesearch",
        m: int = 16,
        ef_construction: int = 200,
        ef: int = 128,
        exact_ef: int = 1024,
        timeout: float = 10.0,
        shards: int = 1,
        token: str | None = None,
    ) -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:  # pragma: no cover - depends on the extra being installed
            raise ValueError("milvus:// needs pymilvus: pip install 'facesearch[milvus]'") from exc
        if not prefix.replace("_", "").isalnum() or not prefix[:1].isalpha():
            raise ValueError(f"milvus prefix must be letters, digits and _: {prefix!r}")
        self.uri = uri
        self.prefix = prefix
        self.m, self.ef_construction, self.ef, self.exact_ef = m, ef_construction, ef, exact_ef
        self.timeout = timeout
        self.shards = shards
        self._lock = threading.RLock()
        self._client: Any = self._call(
            lambda: MilvusClient(uri=uri, token=token or os.environ.get(TOKEN_ENV, ""), timeout=timeout)
        )
        self._meta = f"{prefix}_meta"
        self._dims: dict[int, int] = {}  # partition -> dimension (mirror of the meta rows)
        self._ready: set[str] = set()  # Milvus collections known to exist and be loaded
        # partition -> (faces, when counted): dropped on a write here, kept COUNT_TTL_S otherwise
        self._counts: dict[int, tuple[int, float]] = {}
        self._refreshed = 0.0
        self._groups: dict[tuple[int, int], frozenset[str]] = {}  # (partition, person) -> groups
        self._touched: set[str] = set()  # collections written since the last barrier
        #: How far the change log is applied; kept in the database by the follower (cursor_name).
        self.applied_seq = 0
        self.cursor_name = f"milvus:{prefix}"
        #: Set by the follower before it applies: another process applied since this one last did
        #: (or this one never did), so the reads an apply depends on must be Strong. When this
        #: process was the last applier, its own writes are visible to it already (it waited).
        self.others_applied = True
        self.generation = ""
        self._ensure_meta()
        self.refresh()

    # ---- plumbing ------------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T]) -> T:
        """Run one Milvus call; any failure of the server or the network is `IndexUnavailable`."""
        from pymilvus.exceptions import MilvusException

        try:
            return fn()
        except MilvusException as exc:
            raise IndexUnavailable(f"the Milvus index failed: {exc.message}") from exc
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise IndexUnavailable(f"the Milvus index is unreachable: {exc}") from exc
        except Exception as exc:
            # grpc errors (RpcError, FutureTimeoutError) are not Milvus exceptions
            if type(exc).__module__.startswith(("grpc", "concurrent")):
                raise IndexUnavailable(f"the Milvus index is unreachable: {exc}") from exc
            raise

    def _load(self, name: str) -> None:
        """Load a collection. One another process has just created may not have its index yet
        (Milvus creates the collection, then its index): "index not found" is then waited out for
        up to LOAD_WAIT_S (two servers started at once on an empty Milvus met it)."""
        deadline = time.monotonic() + LOAD_WAIT_S
        while True:
            try:
                self._call(lambda: self._client.load_collection(name))
                return
            except IndexUnavailable as exc:
                if "index not found" not in exc.message or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _name(self, dim: int) -> str:
        return f"{self.prefix}_d{dim}"

    def _ensure_meta(self) -> None:
        from pymilvus import DataType

        c = self._client
        if self._call(lambda: c.has_collection(self._meta)):
            self._load(self._meta)
            return
        log.info("creating the Milvus collections %s_*", self.prefix)
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("value", DataType.VARCHAR, max_length=1024)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
        index = c.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        if not self._create(
            self._meta, lambda: c.create_collection(self._meta, schema=schema, index_params=index)
        ):
            self._load(self._meta)
            return  # another process created it at the same moment (and its generation)
        self._load(self._meta)
        self._set_meta("generation", {"name": secrets.token_hex(16)})
        self.barrier()

    def _create(self, name: str, create: Callable[[], Any]) -> bool:
        """Create a collection; False when another process created it first (then it exists)."""
        try:
            self._call(create)
        except IndexUnavailable:
            if self._call(lambda: self._client.has_collection(name)):
                return False
            raise
        return True

    def _ensure_faces(self, dim: int) -> str:
        from pymilvus import DataType

        name = self._name(dim)
        if name in self._ready:
            return name
        c = self._client
        if not self._call(lambda: c.has_collection(name)):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("pk", DataType.INT64, is_primary=True)
            schema.add_field("partition", DataType.INT64, is_partition_key=True)
            schema.add_field("face_id", DataType.INT64)
            schema.add_field("person_id", DataType.INT64)
            schema.add_field(
                "groups",
                DataType.ARRAY,
                element_type=DataType.VARCHAR,
                max_capacity=_MAX_GROUPS,
                max_length=_GROUP_BYTES,
            )
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index = c.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type="HNSW",
                metric_type="L2",
                params={"M": self.m, "efConstruction": self.ef_construction},
            )
            # A sorted index on person_id: the template and group look-ups filter on it
            # (person_id in [...] over 100k faces: 26 ms without it).
            index.add_index(field_name="person_id", index_type="STL_SORT")
            self._create(
                name,
                lambda: c.create_collection(
                    name, schema=schema, index_params=index, num_shards=self.shards, num_partitions=16
                ),
            )
        self._load(name)
        self._ready.add(name)
        return name

    def _set_meta(self, key: str, value: dict[str, Any]) -> None:
        c = self._client
        self._call(lambda: c.delete(self._meta, ids=[key]))
        row = {"key": key, "value": json.dumps(value), "vector": [0.0, 0.0]}
        self._call(lambda: c.insert(self._meta, data=[row]))
        self._touched.add(self._meta)

    def _settle(self) -> None:
        """Before a read: make this instance's own writes visible to it (read-your-writes)."""
        if self._touched - {self._meta}:
            self.barrier()

    def _query(
        self, collection: str, expr: str, fields: list[str], strong: bool = False, by_key: bool = False
    ) -> list[dict[str, Any]]:
        """Every row matching ``expr``, paged by primary key (Milvus returns rows in key order).

        Vectors are fetched by primary key in a second query: Milvus 2.3 takes ~45 ms to return
        them from a filter on other fields, ~2 ms from a key filter (measured)."""
        if collection != self._meta:
            self._settle()
        if "vector" in fields and collection != self._meta and not by_key:
            keys = [int(r["pk"]) for r in self._query(collection, expr, [], strong)]
            found: list[dict[str, Any]] = []
            for at in range(0, len(keys), _QUERY_BATCH):
                chunk = keys[at : at + _QUERY_BATCH]
                found += self._query(collection, f"pk in {_ints(chunk)}", fields, strong, by_key=True)
            return found
        c = self._client
        level = "Strong" if strong else "Bounded"
        out: list[dict[str, Any]] = []
        pk = "key" if collection == self._meta else "pk"
        last: Any = None
        while True:
            page_expr = expr if last is None else f"({expr}) and {pk} > {json.dumps(last)}"
            rows: list[dict[str, Any]] = self._call(
                lambda e=page_expr: c.query(  # type: ignore[misc]
                    collection,
                    filter=e,
                    output_fields=[pk, *fields],
                    limit=_QUERY_BATCH,
                    consistency_level=level,
                )
            )
            out.extend(rows)
            if len(rows) < _QUERY_BATCH:
                return out
            last = max(r[pk] for r in rows)

    # ---- generation, partitions and visibility ---------------------------------------------------
    def refresh(self) -> bool:
        """Re-read the generation and the partitions from Milvus; True when they changed."""
        with self._lock:
            rows = self._query(self._meta, 'key >= ""', ["value"], strong=not self.generation)
            values = {r["key"]: json.loads(r["value"]) for r in rows}
            generation = str(values.get("generation", {}).get("name", ""))
            if not generation:  # a meta collection without one (an interrupted creation)
                generation = secrets.token_hex(16)
                self._set_meta("generation", {"name": generation})
                self.barrier()
            dims = {
                int(k.split(":", 1)[1]): int(v["dim"])
                for k, v in values.items()
                if k.startswith("partition:")
            }
            moved = generation != self.generation or dims != self._dims
            self.generation, self._dims = generation, dims
            self._refreshed = time.monotonic()
            # The log moved: other processes may have written faces and groups since.
            self._counts.clear()
            self._groups.clear()
            if moved:
                self._ready &= {self._name(d) for d in dims.values()}
            return moved

    def barrier(self) -> None:
        """Wait until every write made so far, by any process, is visible to this one's reads:
        one ``Strong`` query per collection, at once (each waits for Milvus's next time tick)."""
        with self._lock:
            names = sorted({self._meta, *self._ready, *self._touched})
            if len(names) == 1:
                self._strong_count(names[0])
            else:
                with ThreadPoolExecutor(max_workers=min(len(names), 8)) as pool:
                    list(pool.map(self._strong_count, names))
            self._touched.clear()

    def _strong_count(self, name: str) -> None:
        pk = "key" if name == self._meta else "pk"
        expr = f'{pk} >= ""' if name == self._meta else "pk >= 0"
        self._call(
            lambda: self._client.query(
                name, filter=expr, output_fields=["count(*)"], consistency_level="Strong"
            )
        )

    # ---- mutations -----------------------------------------------------------------------------
    def _partition_dim(self, partition: int, dim: int | None) -> int | None:
        known = self._dims.get(partition)
        if dim is not None and known is not None and known != dim:
            raise ValueError(f"partition {partition} holds {known}-d vectors, got {dim}-d")
        return known

    def _check_partition(self, partition: int) -> int:
        p = int(partition)
        if not 0 <= p <= _MAX_PARTITION:
            raise ValueError(f"partition must be 0..{_MAX_PARTITION}")
        return p

    def add(
        self,
        partition: int,
        face_ids: IdsLike,
        person_ids: IdsLike,
        vectors: np.ndarray,
        *,
        groups: Mapping[int, Iterable[str]] | None = None,
    ) -> None:
        """Insert faces (an existing face_id is replaced). ``groups`` (person -> groups) spares a
        look-up of each person's groups: the change log carries them with each new face."""
        part = self._check_partition(partition)
        fids = as_ids(face_ids, "face_ids")
        pids = as_ids(person_ids, "person_ids")
        if len(pids) != len(fids):
            raise ValueError(f"{len(fids)} face_ids but {len(pids)} person_ids")
        if len(fids) == 0:
            return
        vecs = as_vectors(vectors, len(fids))
        if int(fids.max()) > _MAX_FACE_ID:
            raise ValueError(f"face ids must be below 2**{_FACE_BITS}")
        dim = vecs.shape[1]
        with self._lock:
            self._partition_dim(part, dim)
            name = self._ensure_faces(dim)
            if part not in self._dims:
                self._set_meta(f"partition:{part}", {"dim": dim})
                self._dims[part] = dim
            last = {int(f): i for i, f in enumerate(fids.tolist())}  # duplicates: the last one wins
            keep = sorted(last.values())
            fids, pids, vecs = fids[keep], pids[keep], vecs[keep]
            for person, names in (groups or {}).items():
                self._groups[(part, int(person))] = as_groups(names)
            groups_of = self._groups_of(part, name, sorted(set(pids.tolist())))
            pks = [(part << _FACE_BITS) | int(f) for f in fids.tolist()]
            rows = [
                {
                    "pk": pk,
                    "partition": part,
                    "face_id": int(f),
                    "person_id": int(p),
                    "groups": sorted(groups_of[int(p)]),
                    "vector": v,
                }
                for pk, f, p, v in zip(pks, fids.tolist(), pids.tolist(), vecs.tolist(), strict=True)
            ]
            c = self._client
            for at in range(0, len(rows), _BATCH):
                chunk = rows[at : at + _BATCH]
                self._call(lambda ch=chunk: c.delete(name, ids=[r["pk"] for r in ch]))  # type: ignore[misc]
                self._call(lambda ch=chunk: c.insert(name, data=ch))  # type: ignore[misc]
            self._changed(part, name)

    def _groups_of(self, part: int, name: str, persons: list[int]) -> dict[int, frozenset[str]]:
        """Each person's groups: as last set here, else as stored on their rows, else default."""
        out = {p: g for p in persons if (g := self._groups.get((part, p))) is not None}
        unknown = [p for p in persons if p not in out]
        if unknown:
            expr = f"partition == {part} and person_id in {_ints(unknown)}"
            rows = self._query(name, expr, ["person_id", "groups"], strong=self.others_applied)
            for r in rows:
                out.setdefault(int(r["person_id"]), as_groups(r["groups"]))
        for p in unknown:
            out.setdefault(p, as_groups(()))
            self._groups[(part, p)] = out[p]
        return out

    def _changed(self, part: int, name: str) -> None:
        self._counts.pop(part, None)
        self._touched.add(name)

    def remove_faces(self, partition: int, face_ids: Sequence[int]) -> None:
        part = int(partition)
        ids = [int(f) for f in face_ids if 0 <= int(f) <= _MAX_FACE_ID]
        with self._lock:
            dim = self._dims.get(part)
            if dim is None or not ids:
                return
            name = self._ensure_faces(dim)
            pks = [(part << _FACE_BITS) | f for f in ids]
            self._call(lambda: self._client.delete(name, ids=pks))
            self._changed(part, name)

    def remove_person(self, partition: int, person_id: int) -> None:
        part = int(partition)
        with self._lock:
            self._groups.pop((part, int(person_id)), None)
            dim = self._dims.get(part)
            if dim is None:
                return
            name = self._ensure_faces(dim)
            # Deletes by expression find the rows at the delete's own time (fresh rows included).
            expr = f"partition == {part} and person_id == {int(person_id)}"
            self._call(lambda: self._client.delete(name, filter=expr))
            self._changed(part, name)

    def set_person_groups(self, partition: int, person_id: int, groups: Iterable[str]) -> None:
        part, person = self._check_partition(partition), int(person_id)
        names = as_groups(groups)
        if len(names) > _MAX_GROUPS or any(len(g.encode()) > _GROUP_BYTES for g in names):
            raise ValueError(f"at most {_MAX_GROUPS} groups of at most {_GROUP_BYTES} bytes")
        with self._lock:
            if self._groups.get((part, person)) == names:
                return
            self._groups[(part, person)] = names
            dim = self._dims.get(part)
            if dim is None:
                return
            name = self._ensure_faces(dim)
            rows = self._query(
                name,
                f"partition == {part} and person_id == {person}",
                ["partition", "face_id", "person_id", "groups", "vector"],
                strong=self.others_applied,  # rows another process wrote a moment ago too
            )
            stale = [r for r in rows if as_groups(r["groups"]) != names]
            if not stale:
                return
            for r in stale:
                r["groups"] = sorted(names)
            c = self._client
            self._call(lambda: c.delete(name, ids=[int(r["pk"]) for r in stale]))
            self._call(lambda: c.insert(name, data=stale))
            self._changed(part, name)

    def drop_partition(self, partition: int) -> None:
        part = int(partition)
        with self._lock:
            for key in [k for k in self._groups if k[0] == part]:
                del self._groups[key]
            dim = self._dims.get(part)
            if dim is None:
                return
            name = self._ensure_faces(dim)
            self._call(lambda: self._client.delete(name, filter=f"partition == {part}"))
            self._call(lambda: self._client.delete(self._meta, ids=[f"partition:{part}"]))
            del self._dims[part]
            self._changed(part, name)
            self._touched.add(self._meta)

    # ---- reads ---------------------------------------------------------------------------------
    def count(self, partition: int | None = None) -> int:
        with self._lock:
            if partition is None:
                return sum(self.count(p) for p in sorted(self._dims))
            part = int(partition)
            cached = self._counts.get(part)
            if cached is not None and time.monotonic() - cached[1] < COUNT_TTL_S:
                return cached[0]
            dim = self._dims.get(part)
            if dim is None:
                return 0
            name = self._ensure_faces(dim)
            self._settle()
            rows = self._call(
                lambda: self._client.query(
                    name,
                    filter=f"partition == {part}",
                    output_fields=["count(*)"],
                    consistency_level="Bounded",
                )
            )
            n = int(rows[0]["count(*)"]) if rows else 0
            self._counts[part] = (n, time.monotonic())
            return n

    def partitions(self) -> list[int]:
        with self._lock:
            return sorted(self._dims)

    def memory_bytes(self) -> int:
        """The vectors' size in Milvus (this process holds none of them)."""
        with self._lock:
            return sum(self.count(p) * d * 4 for p, d in sorted(self._dims.items()))

    def check(self) -> None:
        """Raise `IndexUnavailable` unless the Milvus server answers (for the health route)."""
        self._call(lambda: self._client.get_server_version())

    def save(self, directory: Path) -> None:
        """Nothing to write: Milvus keeps the data, and the cursor is in the meta collection."""

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a connection to a server that is gone
            log.debug("closing the Milvus client failed", exc_info=True)

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
        nq, dim = qs.shape
        if k <= 0 or (groups is not None and not groups):
            return [[] for _ in range(nq)]
        with self._lock:
            self._settle()
            asked = list(dict.fromkeys(int(p) for p in partitions))
            if any(p not in self._dims for p in asked) and time.monotonic() - self._refreshed > 0.2:
                self.refresh()  # a partition another process created a moment ago
            parts = [p for p in asked if p in self._dims]
            for p in parts:
                self._partition_dim(p, dim)
            if not parts:
                return [[] for _ in range(nq)]
            name = self._ensure_faces(dim)
        expr = f"partition in {_ints(parts)}"
        if groups is not None:
            expr += f" and array_contains_any(groups, {_expr_strings(sorted(set(groups)))})"
        templates = templates and unique_persons
        want = max(k, TEMPLATE_CANDIDATES) if templates else k
        kk = min(_MAX_TOPK, want * _UNIQUE_START if unique_persons else want)
        found = self._ann(name, qs, expr, kk, exact)
        out: list[list[Hit]] = []
        bound = None if max_distance is None else (max_distance * 1.001) ** 2 + 1e-6
        for qi, rows in enumerate(found):
            n = kk
            while unique_persons and len(rows) == n and n < _MAX_TOPK:
                if len({r["person_id"] for r in rows}) >= want:
                    break
                if bound is not None and rows and rows[-1]["sq"] > bound:
                    break
                n = min(_MAX_TOPK, n * _UNIQUE_GROWTH)
                rows = self._ann(name, qs[qi : qi + 1], expr, n, exact)[0]
            out.append(self._finish(name, qs[qi], rows, k, unique_persons, max_distance, templates))
        return out

    def _ann(
        self, name: str, qs: FloatArray, expr: str, limit: int, exact: bool
    ) -> list[list[dict[str, Any]]]:
        """Nearest rows per query: dicts with partition, face_id, person_id and sq (squared
        distance; with ``exact`` recomputed from the stored vectors, fetched by key)."""
        ef = max(self.exact_ef if exact else self.ef, limit)
        res = self._call(
            lambda: self._client.search(
                name,
                data=qs.tolist(),
                filter=expr,
                limit=limit,
                output_fields=["partition", "face_id", "person_id"],
                search_params={"metric_type": "L2", "params": {"ef": ef}},
                anns_field="vector",
                consistency_level="Bounded",
            )
        )
        out: list[list[dict[str, Any]]] = []
        for qi, hits in enumerate(res):
            rows: list[dict[str, Any]] = [
                {
                    "pk": int(h["id"]),
                    "partition": int(h["entity"]["partition"]),
                    "face_id": int(h["entity"]["face_id"]),
                    "person_id": int(h["entity"]["person_id"]),
                    "sq": float(h["distance"]),
                }
                for h in hits
            ]
            if exact and rows:
                stored = {
                    int(r["pk"]): r["vector"]
                    for r in self._query(
                        name, f"pk in {_ints(r['pk'] for r in rows)}", ["vector"], by_key=True
                    )
                }
                rows = [r for r in rows if int(r["pk"]) in stored]
                vecs = np.asarray([stored[int(r["pk"])] for r in rows], dtype=np.float64)
                q = qs[qi].astype(np.float64)
                for r, d in zip(rows, ((vecs - q) ** 2).sum(axis=1).tolist(), strict=True):
                    r["sq"] = d
                rows.sort(key=lambda r: (r["sq"], r["partition"], r["face_id"]))
            out.append(rows)
        return out

    def _finish(
        self,
        name: str,
        q: FloatArray,
        rows: list[dict[str, Any]],
        k: int,
        unique: bool,
        max_d: float | None,
        templates: bool,
    ) -> list[Hit]:
        if unique:
            seen: set[int] = set()
            firsts = []
            for r in sorted(rows, key=lambda r: (r["sq"], r["partition"], r["face_id"])):
                if r["person_id"] not in seen:
                    seen.add(r["person_id"])
                    firsts.append(r)
            rows = firsts[: max(k, TEMPLATE_CANDIDATES)] if templates else firsts
        if templates and rows:
            self._template_distances(name, q, rows)
        hits = [
            Hit(r["partition"], r["face_id"], r["person_id"], float(np.sqrt(max(r["sq"], 0.0)))) for r in rows
        ]
        hits = merge_hits([hits], k, unique)
        if max_d is not None:
            hits = [h for h in hits if h.distance <= max_d]
        return hits

    def _template_distances(self, name: str, q: FloatArray, rows: list[dict[str, Any]]) -> None:
        """Replace each multi-face person's distance by that of their template (as in-process)."""
        by_part: dict[int, list[int]] = {}
        for r in rows:
            by_part.setdefault(r["partition"], []).append(r["person_id"])
        faces: dict[tuple[int, int], list[list[float]]] = {}
        for part, persons in by_part.items():
            found = self._query(
                name, f"partition == {part} and person_id in {_ints(persons)}", ["person_id", "vector"]
            )
            for f in found:
                faces.setdefault((part, int(f["person_id"])), []).append(f["vector"])
        query = q.astype(np.float64)
        for r in rows:
            vecs = faces.get((r["partition"], r["person_id"]), [])
            if len(vecs) < 2:
                continue
            arr = np.asarray(vecs, dtype=np.float64)
            mean = arr.mean(axis=0)
            unit = bool(np.all(np.abs((arr**2).sum(axis=1) - 1.0) <= 4e-3))
            norm = float(np.linalg.norm(mean))
            if unit and norm > 0:
                mean = mean / max(norm, 1e-12)
            r["sq"] = float(((mean - query) ** 2).sum())


def open_milvus(url: str) -> MilvusIndex:
    """A `MilvusIndex` from ``milvus://host:port?prefix=...&m=..&ef_construction=..&ef=..``."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=False))
    unknown = set(params) - _PARAMS
    if unknown:
        raise ValueError(f"unknown milvus URL parameters: {sorted(unknown)}")
    if parts.username or parts.password:
        raise ValueError(f"put Milvus credentials in {TOKEN_ENV}, not in the URL")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 19530
    scheme = "https" if params.pop("secure", "0").lower() in ("1", "true", "yes") else "http"
    kwargs: dict[str, Any] = {}
    if "prefix" in params:
        kwargs["prefix"] = params.pop("prefix")
    try:
        if "timeout" in params:
            kwargs["timeout"] = float(params.pop("timeout"))
        kwargs.update({k: int(v) for k, v in params.items()})
    except ValueError as exc:
        raise ValueError(f"milvus URL parameters must be numbers: {url!r}") from exc
    return MilvusIndex(f"{scheme}://{host}:{port}", **kwargs)
