"""HNSW backend: hnswlib graphs per partition over the exact data, candidates re-ranked exactly.

Library: at 100k face-like 128-d vectors, hnswlib and FAISS `IndexHNSWFlat` gave the same recall
and latency within noise (M=16, ef_construction=100, ef=128: recall@10 0.954 vs 0.953 on probes of
enrolled identities, 0.36 vs 0.45 ms), but FAISS HNSW cannot remove or replace a vector. hnswlib
has `mark_deleted` and `replace_deleted`, so removals and upserts never force a rebuild. Graph
labels are never reused: `replace_deleted` with a re-added label would leave two slots for it.
hnswlib keeps full float32 vectors, so its ranking is already exact on the candidates; the exact
re-rank from the partition's own matrix makes distances identical to `ExactIndex`'s.

Parameters, measured on 100k `synthetic.face_like` vectors (isotropic, the hardest case), 200
probes of enrolled identities ("known") and 100 of strangers ("unknown"), recall@10 against the
exact scan, one query thread, 2 shared busy cores (latencies +-30%, build times +-50%):

    M   ef_constr  build   ef_search  known   unknown  ms/query
    16  100        15 s    256        0.9710  0.8425   0.56
    16  100        15 s    512        0.9880  0.9530   1.13
    32  100        30 s    128        0.9880  0.8215   0.57
    32  100        30 s    192        0.9930  0.9055   0.75
    32  100        30 s    256        0.9955  0.9495   0.98
    32  100        30 s    384        0.9990  0.9820   1.98
    24  200        59 s    256        0.9975  0.9415   1.13
    32  200        150 s   256        0.9985  0.9750   1.16
    exact scan (faiss.knn, one thread)                 1.7

On dlib-calibrated data (`kind="dlib"`), M=32/100 gives 0.991/0.980 at ef=128 (0.52 ms) and
0.9975/0.995 at ef=256 (0.98 ms). Probes of strangers are the hard part (every stranger is within a
few hundredths of the same distance, ~1.45 isotropic, ~0.85 dlib-like).

At 1M faces (bench/scale.py's gallery: real LFW dlib descriptors and a Gaussian fitted to them; 400
probes, known and strangers; recall of the true top-10 within the default threshold, which at 1M
faces holds nearly every top-10; quiet machine, p50 of one query, M=32):

    graph                                  ef_constr  build   ef   ms     recall
    one graph, 128-d                       100        235 s   256  0.95   0.973
                                                              384  1.40   0.989
    one graph, 64 principal components     100        177 s   256  0.77   0.973
                                                              384  1.10   0.990
    same, 48 components (re-rank 100)      100        150 s   384  1.03   0.987
    one graph, 64 components               200        325 s   256  0.78   0.980
                                                              384  1.15   0.992
    two shards of 500k, 64 components,     200        ~330 s  192  0.65   0.988
      searched in parallel                                    256  0.84   0.994
                                                              320  0.99   0.997

dlib descriptors keep 97% of their variance in 64 principal components (100% in 96), so the graph
is built on those (`Projection`; 256 fewer bytes per face, and each hop reads half the memory) and
its candidates (at least RERANK_FLOOR) are re-ranked on the full vectors: at equal ef the recall is
the same as the 128-d graph's and the search 1.3x faster. Two shards searched by two threads cost
~0.14 ms of hand-off but each is half the size: recall at ef=256 rises from 0.980 to 0.994. (glibc
transparent huge pages for the graph memory changed nothing measurable.) Through `HnswIndex.search`
(re-rank included) at 1M, two shards, back to back: ef=192 0.81 ms / 0.990, ef=224 0.87 ms / 0.993,
ef=256 1.05 ms / 0.996 (`bench/scale.py`). Chosen: M=32, ef_construction=200, ef_search=224,
projection on, two shards on two or more cores.

Small partitions: the exact scan costs ~17 ns per face (0.14 ms at 10k, 0.25 ms at 20k, 1.1 ms
at 50k) while the graph at ef=256 already needs 0.3-0.5 ms at 10-20k, so below
`SMALL_PARTITION` (50,000) faces no graph is kept and searches are exact (recall 1.0).

Snapshots store the graph (`save_index`): loading 100k takes ~0.5 s, rebuilding 30-50 s on two
cores. Adding one face to a 100k graph takes ~0.7 ms, removing one ~3 us; bulk `add` calls use
all cores, so a log replay should batch its adds.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from facesearch.index._common import PartitionedIndex
from facesearch.index._store import Candidates, PartitionStore
from facesearch.index.base import FloatArray, IdArray

DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 224
# The graph is built on the partition's principal components when few of them carry nearly all
# the variance (dlib descriptors: 64 of 128 keep 97%); candidates are re-ranked on full vectors.
PROJECT_VARIANCE = 0.97
PROJECT_STEP = 16  # projected dimensions come in multiples of this
PROJECT_SAMPLE = 200_000  # rows the principal components are fitted on
RERANK_FLOOR = 40  # a projected graph returns at least this many candidates (all shards together)
SMALL_PARTITION = 50_000
_BULK = 256  # adds of at least this many faces use all cores
_EXACT_FALLBACK_FRACTION = 4  # ask the graph for at most n / this candidates, else scan exactly
_MAX_GRAPH_K = 1024


class Projection:
    """Centre and principal axes that map a partition's vectors to the graph's fewer dimensions."""

    def __init__(self, mean: FloatArray, axes: FloatArray) -> None:
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)
        self.axes = np.ascontiguousarray(axes, dtype=np.float32)  # (dim, projected dim)

    @property
    def dim(self) -> int:
        return int(self.axes.shape[1])

    def __call__(self, vectors: FloatArray) -> FloatArray:
        out: FloatArray = np.ascontiguousarray((vectors - self.mean) @ self.axes, dtype=np.float32)
        return out

    @classmethod
    def fit(cls, vectors: FloatArray, keep: float = PROJECT_VARIANCE) -> Projection | None:
        """The fewest axes (a multiple of PROJECT_STEP) keeping ``keep`` of the variance, or None
        when that is more than half the dimensions (the graph then uses the vectors as they are)."""
        n, dim = vectors.shape
        if dim < 2 * PROJECT_STEP or n < 2 * dim:
            return None
        rows = vectors
        if n > PROJECT_SAMPLE:
            pick = np.random.default_rng(0).choice(n, PROJECT_SAMPLE, replace=False)
            rows = vectors[np.sort(pick)]
        x = rows.astype(np.float64)
        mean = x.mean(axis=0)
        values, axes = np.linalg.eigh(np.cov(x - mean, rowvar=False))
        order = np.argsort(values)[::-1]
        values, axes = np.maximum(values[order], 0.0), axes[:, order]
        total = float(values.sum())
        if total <= 0.0:
            return None
        kept = np.cumsum(values) / total
        want = int(np.searchsorted(kept, keep)) + 1
        want = -(-want // PROJECT_STEP) * PROJECT_STEP
        if want > dim // 2:
            return None
        return cls(mean, axes[:, :want])


class _Graph:
    """HNSW over one partition: one hnswlib graph per shard, labels never reused.

    Label ``l`` lives in shard ``l % shards``, so new faces alternate between the shards and a
    label says where to find it. A single query searches the shards in parallel (hnswlib
    releases the GIL), each for the full ``kk``, and the exact re-rank merges them: two graphs of
    n/2 on two cores answer sooner and with better recall than one graph of n (at 1M faces,
    ef=256: 0.84 ms / recall 0.994 against 0.78 ms / 0.980 for one graph; see the module notes).
    """

    def __init__(self, indexes: list[Any], projection: Projection | None = None) -> None:
        self.indexes = indexes
        self.projection = projection
        self.label_of: dict[int, int] = {}
        self.fid_by_label = np.full(16, -1, dtype=np.int64)  # face id of each label, -1 when vacant
        self.next_label = 0
        self.counts = [0] * len(indexes)  # live faces per shard

    @property
    def live(self) -> int:
        """Live faces in the graph."""
        return sum(self.counts)

    def load_labels(self, labels: IdArray, fids: IdArray) -> None:
        """Set the label maps and per-shard counts from saved (label, face id) pairs."""
        self.label_of = dict(zip(fids.tolist(), labels.tolist(), strict=True))
        self.fid_by_label = np.full(max(self.next_label, 16), -1, dtype=np.int64)
        self.fid_by_label[labels] = fids
        self.counts = np.bincount(labels % self.shards, minlength=self.shards).tolist()

    @classmethod
    def new(
        cls,
        dim: int,
        m: int,
        ef_construction: int,
        capacity: int,
        projection: Projection | None = None,
        shards: int = 1,
    ) -> _Graph:
        indexes = []
        for _ in range(shards):
            index = hnswlib.Index(space="l2", dim=projection.dim if projection is not None else dim)
            index.init_index(
                max_elements=max(-(-capacity // shards), 16),
                M=m,
                ef_construction=ef_construction,
                allow_replace_deleted=True,
            )
            indexes.append(index)
        return cls(indexes, projection)

    @property
    def shards(self) -> int:
        return len(self.indexes)

    def _points(self, vectors: FloatArray) -> FloatArray:
        return self.projection(vectors) if self.projection is not None else vectors

    def upsert(self, face_ids: IdArray, vectors: FloatArray) -> None:
        old = np.array([f in self.label_of for f in face_ids.tolist()], dtype=np.bool_)
        threads = -1 if len(face_ids) >= _BULK else 1
        vectors = self._points(vectors)
        if old.any():
            labels = np.array([self.label_of[f] for f in face_ids[old].tolist()], dtype=np.int64)
            self._add(vectors[old], labels, threads, replace_deleted=False)
        new = ~old
        m = int(new.sum())
        if m == 0:
            return
        labels = np.arange(self.next_label, self.next_label + m, dtype=np.int64)
        fresh_vectors, fresh_ids = (
            (vectors, face_ids) if m == len(face_ids) else (vectors[new], face_ids[new])
        )
        per_shard = np.bincount(labels % self.shards, minlength=self.shards).tolist()
        for shard, (index, mine) in enumerate(zip(self.indexes, per_shard, strict=True)):
            vacant = int(index.element_count) - self.counts[shard]
            need = int(index.element_count) + max(0, mine - vacant)
            cap = int(index.max_elements)
            if need > cap:
                index.resize_index(max(need, 2 * cap))
        self.next_label += m
        self._add(fresh_vectors, labels, threads, replace_deleted=True)
        self.label_of.update(zip(fresh_ids.tolist(), labels.tolist(), strict=True))
        if self.next_label > len(self.fid_by_label):
            grown = np.full(max(self.next_label, 2 * len(self.fid_by_label)), -1, dtype=np.int64)
            grown[: len(self.fid_by_label)] = self.fid_by_label
            self.fid_by_label = grown
        self.fid_by_label[labels] = fresh_ids
        self.counts = [have + added for have, added in zip(self.counts, per_shard, strict=True)]

    def _add(self, points: FloatArray, labels: IdArray, threads: int, *, replace_deleted: bool) -> None:
        if self.shards == 1:
            self.indexes[0].add_items(points, labels, num_threads=threads, replace_deleted=replace_deleted)
            return
        for shard, index in enumerate(self.indexes):
            mine = (labels % self.shards) == shard
            if mine.any():
                index.add_items(
                    points[mine], labels[mine], num_threads=threads, replace_deleted=replace_deleted
                )

    def remove(self, face_ids: list[int]) -> None:
        for fid in face_ids:
            label = self.label_of.pop(fid, None)
            if label is not None:
                self.fid_by_label[label] = -1
                shard = label % self.shards
                self._scrub(self.indexes[shard], label, self.counts[shard])
                self.counts[shard] -= 1

    @staticmethod
    def _scrub(index: Any, label: int, live: int) -> None:
        """Delete a point (one of ``live`` live points of its shard) after overwriting its stored
        vector with its nearest live neighbour's: hnswlib keeps a deleted point's data (and writes
        it to every saved graph) until its slot is reused, and an erased face's embedding must not
        outlive it, in memory or in snapshot files. A copy of a neighbour keeps the graph as it
        was (a zero vector would turn the point into a hub and cost recall)."""
        own = index.get_items(np.array([label]))
        labels, _ = index.knn_query(own, k=min(2, live))
        others = [int(x) for x in labels[0] if int(x) != label]
        replacement = index.get_items(np.array(others[:1])) if others else np.zeros_like(own)
        index.add_items(np.asarray(replacement, dtype=np.float32), np.array([label]), replace_deleted=False)
        index.mark_deleted(label)

    def knn(self, queries: FloatArray, kk: int, ef: int, pool: ShardPool | None = None) -> IdArray:
        """Face ids of the graph neighbours of each query, at least kk (raises RuntimeError if too
        few); a projected graph gives at least RERANK_FLOOR, for the re-rank on full vectors.
        ``pool`` searches the other shards of a single query while this thread searches the first."""
        if self.projection is not None:  # the floor is shared out between the shards
            kk = max(kk, -(-RERANK_FLOOR // self.shards))
        points = self._points(queries)
        asks = []
        for shard, index in enumerate(self.indexes):
            k_here = min(kk, self.counts[shard])
            if k_here > 0:
                index.set_ef(max(ef, k_here))
                asks.append((index, k_here))
        if not asks:
            raise RuntimeError("the graph holds no live face")
        threads = 1 if len(queries) == 1 else -1
        parallel = pool is not None and len(asks) > 1 and len(queries) == 1 and not pool.busy()
        executor = pool.get() if pool is not None and parallel else None
        if executor is None:
            found = [index.knn_query(points, k=k, num_threads=threads)[0] for index, k in asks]
        else:  # one query: the shards in parallel, this thread searching the first
            later = [executor.submit(index.knn_query, points, k, 1) for index, k in asks[1:]]
            found = [asks[0][0].knn_query(points, k=asks[0][1], num_threads=1)[0]]
            found += [future.result()[0] for future in later]
        labels = found[0] if len(found) == 1 else np.hstack(found)
        fids: IdArray = self.fid_by_label[labels.astype(np.int64, copy=False)]
        return fids  # one row of face ids per query

    def memory_bytes(self) -> int:
        total = self.projection.axes.nbytes if self.projection is not None else 0
        for index in self.indexes:
            cap, m, dim = int(index.max_elements), int(index.M), int(index.dim)
            # level-0 links, vector, label, per-slot lock, level and pointer, label hash map entry
            per_slot = (2 * m * 4 + 4) + dim * 4 + 8 + 40 + 12 + 48
            upper = (m * 4 + 4) * cap // max(m, 2)  # about one slot in M has upper-level links
            total += cap * per_slot + upper
        return total + 100 * len(self.label_of) + self.fid_by_label.nbytes  # + the label maps


class ShardPool:
    """Threads that search the other shards of a query while the caller searches the first.

    Owned by one HnswIndex: started on first use, shut down by ``close`` (after which searches
    run their shards one after the other in the calling thread).
    """

    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._cores = os.cpu_count() or 1
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._lock = threading.Lock()

    def busy(self) -> bool:
        """Whether every core is taken right now (the kernel's count of runnable threads, this one
        included, in ``/proc/loadavg``): then the shards are searched one after the other in the
        calling thread, since a second thread would only queue for a core and the two would evict
        each other's graph from the caches (measured: ``bench/shards_busy.py``)."""
        return runnable() >= self._cores

    def get(self) -> ThreadPoolExecutor | None:
        """The executor (started now if needed), or None once closed."""
        if self._executor is None and not self._closed:
            with self._lock:
                if self._executor is None and not self._closed:
                    self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="hnsw-shard")
        return None if self._closed else self._executor

    def close(self) -> None:
        """Stop the threads (waiting for searches under way)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def runnable() -> int:
    """Threads runnable on the machine at this instant (``/proc/loadavg``'s fourth field, which
    counts the caller); 1 where that file does not exist (then shards always run in parallel)."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 1


def default_shards() -> int:
    """Two shards on a machine with two or more cores, else one."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


class HnswIndex(PartitionedIndex):
    """Exact data plus an HNSW graph per partition with at least `small_partition` faces."""

    backend = "hnsw"

    def __init__(
        self,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        small_partition: int = SMALL_PARTITION,
        project: int = 1,
        shards: int = 0,
    ) -> None:
        super().__init__()
        if m < 2 or ef_construction < 1 or ef_search < 1 or small_partition < 1:
            raise ValueError("HNSW parameters must be positive (M >= 2)")
        if project not in (0, 1):
            raise ValueError("project must be 0 (graph on full vectors) or 1 (principal components)")
        if not 0 <= shards <= 16:
            raise ValueError("shards must be 0 (two on two or more cores, else one) to 16")
        self.shards = shards or default_shards()
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.small_partition = small_partition
        self.project = bool(project)
        self._graphs: dict[int, _Graph] = {}
        self._shard_pool = ShardPool()

    def close(self) -> None:
        """Stop the threads that search shards in parallel (the data stays readable)."""
        self._shard_pool.close()

    def graph_size(self, partition: int) -> int | None:
        """Live faces in the partition's graph, or None when it is served by the exact scan only."""
        with self._lock.read():
            graph = self._graphs.get(partition)
            return graph.live if graph is not None else None

    def _build(self, partition: int, store: PartitionStore) -> None:
        assert store.dim is not None
        projection = Projection.fit(store.vectors) if self.project else None
        graph = _Graph.new(store.dim, self.m, self.ef_construction, store.n, projection, self.shards)
        graph.upsert(store.face_ids, store.vectors)
        self._graphs[partition] = graph

    def _on_upsert(self, partition: int, store: PartitionStore, rows: IdArray) -> None:
        graph = self._graphs.get(partition)
        if graph is not None:
            graph.upsert(store.face_ids[rows], store.vectors[rows])
        elif store.n >= self.small_partition:
            self._build(partition, store)

    def _on_remove(self, partition: int, face_ids: list[int]) -> None:
        graph = self._graphs.get(partition)
        if graph is None:
            return
        if self._parts[partition].n < self.small_partition // 2:
            del self._graphs[partition]  # small again: the exact scan is as fast
        else:
            graph.remove(face_ids)

    def _on_drop(self, partition: int) -> None:
        self._graphs.pop(partition, None)

    def _graph_for(self, partition: int, store: PartitionStore, kk: int) -> _Graph | None:
        graph = self._graphs.get(partition)
        if graph is None or store.n < self.small_partition:
            return None
        if kk > _MAX_GRAPH_K or kk * _EXACT_FALLBACK_FRACTION > store.n:
            return None
        return graph

    def _fast_candidates(self, partition: int, store: PartitionStore, query: FloatArray) -> Candidates | None:
        if self._graph_for(partition, store, 1) is None:
            return None
        exact: list[Candidates] = []

        def candidates(kk: int) -> tuple[FloatArray, IdArray]:
            graph = self._graph_for(partition, store, kk)
            if graph is not None:
                try:
                    found = graph.knn(query[None, :], kk, self.ef_search, self._shard_pool)
                    return _rerank(store, query, found[0])
                except RuntimeError:
                    pass  # too few live neighbours reachable: scan exactly
            if not exact:
                exact.append(store.exact_candidates(query))
            return exact[0](kk)

        return candidates

    def _fast_batch(
        self, partition: int, store: PartitionStore, queries: FloatArray, kk: int
    ) -> list[tuple[FloatArray, IdArray]] | None:
        graph = self._graph_for(partition, store, kk)
        if graph is None:
            return None
        try:
            found = graph.knn(queries, kk, self.ef_search, self._shard_pool)
        except RuntimeError:
            return None
        return [_rerank(store, q, fids) for q, fids in zip(queries, found, strict=True)]

    def _extra_memory(self) -> int:
        return sum(g.memory_bytes() for g in self._graphs.values())

    # ---- snapshots ---------------------------------------------------------------------------
    def _save_extra(self, gen_dir: Path) -> dict[str, Any]:
        graphs: dict[str, Any] = {}
        for part, graph in self._graphs.items():
            for shard, index in enumerate(graph.indexes):
                index.save_index(str(gen_dir / _shard_file(part, shard)))
            labels = np.flatnonzero(graph.fid_by_label >= 0)
            pairs = np.column_stack([labels, graph.fid_by_label[labels]]).astype(np.int64)
            np.save(gen_dir / f"p{part}.labels.npy", pairs, allow_pickle=False)
            projected = graph.projection
            if projected is not None:
                np.savez(gen_dir / f"p{part}.projection.npz", mean=projected.mean, axes=projected.axes)
            graphs[str(part)] = {
                "next_label": graph.next_label,
                "m": self.m,
                "projected_dim": projected.dim if projected is not None else 0,
                "shards": graph.shards,
            }
        return {"graphs": graphs}

    def _load_extra(self, gen_dir: Path, meta: dict[str, Any]) -> None:
        saved = meta.get("extra", {}).get("graphs", {}) if meta.get("backend") == self.backend else {}
        for part, store in self._parts.items():
            info = saved.get(str(part))
            if store.n < self.small_partition:
                continue  # served by the exact scan
            graph = self._read_graph(gen_dir, part, store, info) if info is not None else None
            if graph is not None:
                self._graphs[part] = graph
            else:
                self._build(part, store)

    def _read_graph(
        self, gen_dir: Path, part: int, store: PartitionStore, info: dict[str, Any]
    ) -> _Graph | None:
        """Load a saved graph; None (so it is rebuilt) if it does not match the exact data."""
        if store.dim is None or int(info.get("m", -1)) != self.m:
            return None
        # A saved graph keeps the projection it was built with (none for snapshots written before
        # projections existed): `project` applies to graphs built from now on, never forcing a rebuild.
        projected_dim = int(info.get("projected_dim", 0))
        projection = None
        if projected_dim:
            with np.load(gen_dir / f"p{part}.projection.npz", allow_pickle=False) as z:
                projection = Projection(z["mean"], z["axes"])
            if projection.axes.shape != (store.dim, projected_dim):
                return None
        # Likewise a saved graph keeps its number of shards (one before shards existed).
        indexes = []
        for shard in range(int(info.get("shards", 1))):
            index = hnswlib.Index(space="l2", dim=projected_dim or store.dim)
            index.load_index(str(gen_dir / _shard_file(part, shard)), allow_replace_deleted=True)
            if int(index.M) != self.m or int(index.dim) != (projected_dim or store.dim):
                return None
            indexes.append(index)
        graph = _Graph(indexes, projection)
        pairs = np.load(gen_dir / f"p{part}.labels.npy", allow_pickle=False)
        graph.next_label = int(info["next_label"])
        labels, fids = pairs[:, 0], pairs[:, 1]
        if np.unique(labels).size != len(labels) or (len(labels) and labels.min() < 0):
            return None
        if graph.next_label <= int(labels.max(initial=-1)):
            return None
        graph.load_labels(labels, fids)
        if len(graph.label_of) != len(labels) or not store.holds_exactly(graph.label_of.keys()):
            return None
        if any(int(index.element_count) < live for index, live in zip(indexes, graph.counts, strict=True)):
            return None
        return graph


def _shard_file(part: int, shard: int) -> str:
    return f"p{part}.hnsw" if shard == 0 else f"p{part}.s{shard}.hnsw"


def _rerank(store: PartitionStore, query: FloatArray, face_ids: IdArray) -> tuple[FloatArray, IdArray]:
    """Exact squared distances of graph candidates from the stored vectors, nearest first."""
    rows = store.rows_of(face_ids.tolist())
    d = store.exact_sq(query, rows)
    order = np.argsort(d, kind="stable")
    return d[order], rows[order]
