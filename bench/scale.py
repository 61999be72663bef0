"""Speed at scale: index search, identify over HTTP, enrolment, start-up, and face_recognition's way.

Usage: python bench/scale.py [--max 1000000] [--sizes 1000,10000,100000,1000000] [--out bench/results/latest]

For each gallery size (faces): a SQLite gallery is filled in --workdir (default /tmp/fs-bench) with
`facesearch.storage.bulk.bulk_fill` (faces + change-log rows, no photo is embedded): the 9 photos of
people/ (embedded by the dlib pipeline), the first LFW photo of each LFW person with 2+ photos (real
dlib descriptors) and synthetic faces from a Gaussian model fitted to the real LFW descriptors (see
scale_data.py), 4 faces per synthetic person. On that data:

- search: ExactIndex and HnswIndex (service parameters; the graph forced at every size with
  small_partition=1 so the two can be compared; the service scans exactly below 50,000 faces),
  latency of one query (p50/p95, k=10, one thread), identify-like queries (k=1, one hit per person,
  cut at the default threshold), batch throughput (`search_batch` of all queries), recall@10 and
  the share of true results within the default threshold returned by HNSW, build, snapshot save
  and load times, memory per face. Queries: new synthetic faces of enrolled synthetic persons,
  synthetic strangers, held-out LFW photos of enrolled LFW persons, and LFW persons not enrolled.
- the HNSW index is saved as the service's snapshot, then `facesearch serve` (2 worker processes)
  starts on the gallery: start-up time (spawn to /v1/health answering), RSS, identify over HTTP with
  the 640x480 probes (probes/obama1.jpg, probes/alex_lacamoire1.jpg cropped 4:3 around the face), one
  and two concurrent clients: p50/p95, requests/s, per-stage timings from the results.
- face_recognition's way on the same probes and the same gallery: load_image_file, face_encodings
  (HOG detection with one upsampling, 5-point landmarks, the same ResNet), then face_distance over a
  Python list of float64 encodings, emulated line for line with dlib + numpy.
- enrolment throughput (size independent): ProcessAnalyzer with 1 and 2 worker processes.

Writes OUT.md (tables) and OUT.json (every figure and the settings). Benchmarks, not tests: nothing
is asserted; targets are reported as met or missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from facesearch.index import ExactIndex, HnswIndex, VectorIndex, open_index  # noqa: E402
from facesearch.index.hnsw import DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_M, SMALL_PARTITION  # noqa: E402
from scale_data import (  # noqa: E402
    FittedModel,
    RealSet,
    faces_dir,
    fit_report,
    lfw_embeddings,
    people_photos,
    probe_photos,
)

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
PER_PERSON = 4
COLLECTION = "bench"
EF_SWEEP = (128, 192, 224, 256, 320, 384)
# Published identify times of commercial services (ms), for the table.
COMMERCIAL = {1_000: 12, 10_000: 42, 100_000: 80, 1_000_000: 140}


# ---- small helpers -----------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if len(values) else float("nan")


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def hwm_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    return [int(x) for x in out.split()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages, printed beside every table."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- gallery -----------------------------------------------------------------------------------


class Gallery:
    """Vectors and owners of one gallery, with the queries for the index benchmark."""

    def __init__(
        self,
        n: int,
        real: RealSet,
        model: FittedModel,
        people: list[tuple[str, np.ndarray]],
        seed: int,
        queries: int,
    ) -> None:
        rng = np.random.default_rng([seed, n])
        counts = np.bincount(real.labels)
        multi = np.flatnonzero(counts >= 2)
        first = np.array([np.flatnonzero(real.labels == p)[0] for p in multi])
        last = np.array([np.flatnonzero(real.labels == p)[-1] for p in multi])
        single = np.flatnonzero(counts[real.labels] == 1)
        # named people (e2e probes), then LFW persons, then synthetic persons
        names = sorted({name for name, _ in people})
        dim = real.vectors.shape[1]
        people_vecs = np.stack([v for _, v in people]).astype(np.float32) if people else np.zeros((0, dim))
        people_owner = np.array([names.index(name) for name, _ in people], dtype=np.int64)
        n_lfw = min(len(first), max(0, (n - len(people)) // 2))
        lfw_vecs = real.vectors[first[:n_lfw]].astype(np.float32)
        n_syn = max(0, n - len(people) - n_lfw)
        syn_persons = max(1, -(-n_syn // PER_PERSON))
        centres = model.centres(rng, syn_persons)
        owner_syn = np.arange(n_syn, dtype=np.int64) % syn_persons
        syn_vecs = model.faces(rng, centres[owner_syn])
        self.people_names = names
        self.vectors = np.ascontiguousarray(np.vstack([people_vecs, lfw_vecs, syn_vecs]), dtype=np.float32)
        base_lfw = len(names)
        base_syn = base_lfw + n_lfw
        self.owner = np.concatenate([people_owner, base_lfw + np.arange(n_lfw), base_syn + owner_syn])
        self.n = len(self.vectors)
        # queries: synthetic known / unknown, LFW known (held-out photos) / unknown
        q = queries
        qk = model.faces(rng, centres[rng.integers(0, syn_persons, q)]) if n_syn else np.zeros((0, dim))
        qu = model.faces(rng, model.centres(rng, q // 4))
        lk = real.vectors[last[: min(n_lfw, q // 2)]].astype(np.float32)
        lu = real.vectors[rng.choice(single, q // 4, replace=False)].astype(np.float32)
        self.known = np.ascontiguousarray(np.vstack([qk, lk]), dtype=np.float32)
        self.unknown = np.ascontiguousarray(np.vstack([qu, lu]), dtype=np.float32)
        self.queries = np.vstack([self.known, self.unknown])
        order = rng.permutation(len(self.queries))
        self.queries = np.ascontiguousarray(self.queries[order])
        self.parts = {
            "people": len(people),
            "lfw": n_lfw,
            "synthetic": n_syn,
            "persons": int(self.owner.max()) + 1,
        }


def fill_store(
    data_dir: Path, gallery: Gallery, pack: str = "dlib", database_url: str | None = None
) -> tuple[float, Any]:
    """A fresh data folder with the gallery in SQL (the folder's SQLite file unless
    ``database_url``); returns (seconds, BulkFill)."""
    from facesearch.storage import open_store
    from facesearch.storage.bulk import bulk_fill

    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    store = open_store(database_url or f"sqlite:///{(data_dir / 'facesearch.db').resolve()}")
    try:
        store.create_collection(COLLECTION, "bench", "", "internal", pack, {})
        p = len(gallery.people_names)
        people = gallery.owner < p
        t0 = time.perf_counter()
        named = bulk_fill(
            store, COLLECTION, gallery.vectors[people], gallery.owner[people], external_prefix="people-"
        )
        rest = bulk_fill(
            store, COLLECTION, gallery.vectors[~people], gallery.owner[~people] - p, external_prefix="p-"
        )
        seconds = time.perf_counter() - t0
        # external ids of the named people: people-<j> -> the folder name, for the e2e checks
        with store.engine.begin() as conn:
            from sqlalchemy import text

            for j, name in enumerate(gallery.people_names):
                conn.execute(
                    text("UPDATE persons SET name = :n WHERE external_id = :e"),
                    {"n": name, "e": f"people-{j}"},
                )
        _, key = store.create_api_key("bench", "admin")
    finally:
        store.close()
    face_ids = np.concatenate([named.face_ids, rest.face_ids])
    person_ids = np.concatenate(
        [named.person_ids[gallery.owner[people]], rest.person_ids[gallery.owner[~people] - p]]
    )
    return seconds, {
        "collection_pk": named.collection_id,
        "face_ids": face_ids,
        "person_ids": person_ids,
        "last_seq": rest.last_seq,
        "key": key,
    }


# ---- search ------------------------------------------------------------------------------------


def search_bench(
    gallery: Gallery, filled: dict[str, Any], threshold: float, snap_dir: Path
) -> dict[str, Any]:
    part = int(filled["collection_pk"])
    fids, pids = filled["face_ids"], filled["person_ids"]
    out: dict[str, Any] = {"faces": gallery.n}
    gc.collect()
    rss0 = rss_bytes()
    exact = ExactIndex()
    out["exact_build_s"], _ = timed(lambda: exact.add(part, fids, pids, gallery.vectors))
    rss1 = rss_bytes()
    hnsw = HnswIndex(small_partition=1)
    out["hnsw_build_s"], _ = timed(lambda: hnsw.add(part, fids, pids, gallery.vectors))
    rss2 = rss_bytes()
    out["exact_rss_per_face"] = (rss1 - rss0) / gallery.n
    out["hnsw_rss_per_face"] = (rss2 - rss1) / gallery.n + out["exact_rss_per_face"]
    out["exact_bytes_per_face"] = exact.memory_bytes() / gallery.n
    out["hnsw_bytes_per_face"] = hnsw.memory_bytes() / gallery.n
    log(f"  built: exact {out['exact_build_s']:.2f} s, hnsw {out['hnsw_build_s']:.1f} s")

    qs = gallery.queries
    backends: dict[str, VectorIndex] = {"exact": exact, "hnsw": hnsw}
    for q in qs[:10]:
        for ix in backends.values():
            ix.search([part], q, 10)
    lat: dict[str, list[float]] = {name: [] for name in backends}
    ident: dict[str, list[float]] = {name: [] for name in backends}
    for q in qs:  # interleaved, so background load hits both alike
        for name, ix in backends.items():
            t0 = time.perf_counter()
            ix.search([part], q, 10)
            lat[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ix.search([part], q, 1, unique_persons=True, max_distance=threshold)
            ident[name].append(time.perf_counter() - t0)
    for name, ix in backends.items():
        out[f"{name}_p50_ms"] = med(lat[name]) * 1e3
        out[f"{name}_p95_ms"] = pct(lat[name], 95) * 1e3
        out[f"{name}_identify_p50_ms"] = med(ident[name]) * 1e3
        out[f"{name}_identify_p95_ms"] = pct(ident[name], 95) * 1e3
        secs = [timed(lambda ix=ix: ix.search_batch([part], qs, 10))[0] for _ in range(3)]
        out[f"{name}_batch_qps"] = len(qs) / med(secs)
    out["queries"] = len(qs)
    for name, ix in backends.items():
        out[f"{name}_threads2_speedup"] = thread_speedup(ix, part, qs, threshold)
    for ef in EF_SWEEP:  # latency and recall of the graph at other ef_search values
        hnsw.ef_search = ef
        t = []
        for q in qs:
            t0 = time.perf_counter()
            hnsw.search([part], q, 10)
            t.append(time.perf_counter() - t0)
        out[f"ef{ef}_p50_ms"] = med(t) * 1e3
        for k in (10, 100):
            out[f"ef{ef}_recall_threshold{'' if k == 10 else k}"] = _overlap(
                exact.search_batch([part], qs, k, max_distance=threshold),
                hnsw.search_batch([part], qs, k, max_distance=threshold),
            )
        out[f"ef{ef}_identify_agreement"] = _agreement(exact, hnsw, part, qs, threshold)
        out[f"ef{ef}_recall10"] = _overlap(
            exact.search_batch([part], qs, 10), hnsw.search_batch([part], qs, 10)
        )
    hnsw.ef_search = DEFAULT_EF_SEARCH

    overlap = _overlap
    for label, queries in (("known", gallery.known), ("unknown", gallery.unknown)):
        truth = exact.search_batch([part], queries, 10)
        fast = hnsw.search_batch([part], queries, 10)
        out[f"recall10_{label}"] = overlap(truth, fast)
    every = np.vstack([gallery.known, gallery.unknown])
    truth = exact.search_batch([part], every, 10)
    fast = hnsw.search_batch([part], every, 10)
    out["recall10"] = overlap(truth, fast)
    for k in (10, 100):
        truth_t = exact.search_batch([part], every, k, max_distance=threshold)
        fast_t = hnsw.search_batch([part], every, k, max_distance=threshold)
        key = "" if k == 10 else str(k)
        out[f"recall_threshold{key}"] = overlap(truth_t, fast_t)
        out[f"true_within_threshold{key}"] = sum(len(x) for x in truth_t)
    out["hnsw_alone_p50_ms"] = out[f"ef{DEFAULT_EF_SEARCH}_p50_ms"]
    truth_1 = exact.search_batch([part], every, 1, unique_persons=True, max_distance=threshold)
    fast_1 = hnsw.search_batch([part], every, 1, unique_persons=True, max_distance=threshold)
    out["identify_agreement"] = sum(
        [h.person_id for h in x] == [h.person_id for h in y] for x, y in zip(truth_1, fast_1, strict=True)
    ) / len(every)

    # snapshots: exact alone; then the HNSW one, which the server loads (service parameters)
    with_tmp = snap_dir.parent / f"exact-snapshot-{gallery.n}"
    exact.applied_seq = int(filled["last_seq"])
    out["exact_save_s"], _ = timed(lambda: exact.save(with_tmp))
    exact.drop_partition(part)  # frees the memory
    gc.collect()
    out["exact_load_s"], loaded = timed(lambda: open_index("exact://", with_tmp))
    assert loaded.count() == gallery.n
    del loaded
    shutil.rmtree(with_tmp, ignore_errors=True)
    hnsw.applied_seq = int(filled["last_seq"])
    out["hnsw_save_s"], _ = timed(lambda: hnsw.save(snap_dir))
    hnsw.drop_partition(part)
    gc.collect()
    out["hnsw_load_s"], loaded = timed(lambda: open_index("memory://", snap_dir))
    assert loaded.count() == gallery.n and loaded.applied_seq == int(filled["last_seq"])
    out["served_by"] = "graph" if isinstance(loaded, HnswIndex) and loaded.graph_size(part) else "exact scan"
    del loaded
    gc.collect()
    return out


def _overlap(a: list[list[Any]], b: list[list[Any]]) -> float:
    """Share of the results in a (the truth) that b returned too."""
    found = sum(len({h.face_id for h in x} & {h.face_id for h in y}) for x, y in zip(a, b, strict=True))
    return found / max(1, sum(len(x) for x in a))


def _agreement(exact: VectorIndex, fast: VectorIndex, part: int, qs: np.ndarray, threshold: float) -> float:
    """Share of queries where both give identify's answer alike: the best person within threshold, or none."""
    a = exact.search_batch([part], qs, 1, unique_persons=True, max_distance=threshold)
    b = fast.search_batch([part], qs, 1, unique_persons=True, max_distance=threshold)
    return sum([h.person_id for h in x] == [h.person_id for h in y] for x, y in zip(a, b, strict=True)) / len(
        qs
    )


def thread_speedup(ix: VectorIndex, part: int, qs: np.ndarray, threshold: float) -> float:
    """Identify-like searches per second with two threads over one thread (2.0: no serialisation)."""

    def work(chunk: np.ndarray) -> None:
        for q in chunk:
            ix.search([part], q, 1, unique_persons=True, max_distance=threshold)

    rates: list[float] = []
    for _ in range(2):
        one = timed(lambda: work(qs))[0]
        with ThreadPoolExecutor(2) as pool:
            two = timed(lambda: list(pool.map(work, [qs, qs])))[0]
        rates.append(2 * one / two)
    return med(rates)


# ---- the HTTP server -----------------------------------------------------------------------------


class Server:
    def __init__(self, data_dir: Path, workers: int, logs: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).parent / "facesearch"
        base = (
            [str(exe)] if exe.exists() else [sys.executable, "-c", "from facesearch.cli import main; main()"]
        )
        cmd = [
            *base,
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--data-dir",
            str(data_dir),
        ]
        cmd += ["--log-level", "warning"]
        self._err = (logs / "server.stderr").open("wb")
        self._out = (logs / "server.stdout").open("wb")
        self.logs = logs
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=self._out, stderr=self._err, cwd=logs, env={**os.environ, **(env or {})}
        )

    def wait_ready(self, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.logs / 'server.stderr').read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready")

    def memory(self) -> dict[str, int]:
        kids = children(self.proc.pid)
        return {
            "server_rss": rss_bytes(self.proc.pid),
            "server_peak_rss": hwm_bytes(self.proc.pid),
            "workers_rss": sum(rss_bytes(k) for k in kids),
            "workers": len(kids),
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        self._out.close()


def identify_once(client: httpx.Client, photo: bytes) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = client.post(
        f"/v1/collections/{COLLECTION}/identify",
        files={"image": ("probe.jpg", photo, "image/jpeg")},
        data={"top_k": "1"},
    )
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, r.json()["data"]


class Samples:
    """Client latencies, server stage timings and correctness of identify requests."""

    def __init__(self) -> None:
        self.lat: list[float] = []
        self.stages: dict[str, list[float]] = {}
        self.correct = 0
        self.lock = threading.Lock()

    def add(self, name: str, secs: float, data: dict[str, Any]) -> None:
        expected = name.split("1.")[0]
        ok = bool(data["matches"]) and data["matches"][0]["name"] == expected
        with self.lock:
            self.lat.append(secs)
            self.correct += ok
            for k, v in data["timings"].items():
                self.stages.setdefault(k, []).append(float(v))
            self.stages.setdefault("query_time_ms", []).append(float(data["query_time_ms"]))
            self.stages.setdefault("http_overhead_ms", []).append(secs * 1e3 - float(data["query_time_ms"]))

    def summary(self, prefix: str, wall: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            f"{prefix}_p50_ms": med(self.lat) * 1e3,
            f"{prefix}_p95_ms": pct(self.lat, 95) * 1e3,
            f"{prefix}_correct": self.correct / max(1, len(self.lat)),
            f"{prefix}_stages_p50_ms": {k: round(med(v), 3) for k, v in self.stages.items()},
        }
        if wall is not None:
            out[f"{prefix}_rps"] = len(self.lat) / wall
        return out


class FrRun:
    """face_recognition's flow over one gallery: a Python list of float64 encodings."""

    def __init__(self, fr: FaceRecognitionWay, vectors: np.ndarray, probe_paths: list[Path]) -> None:
        self.fr, self.paths = fr, probe_paths
        self.list_build_s, self.known = timed(lambda: [v.astype(np.float64) for v in vectors])
        # What a numpy user would write instead of face_distance over a list: one float32 matrix
        # scan (so our search's lead is measured against a fair scan too, not only the list).
        self.matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self.stages: dict[str, list[float]] = {
            "load": [],
            "encode": [],
            "distance": [],
            "numpy_scan": [],
            "total": [],
        }
        self.runs = 0

    def once(self, keep: bool = True, tolerance: float = 0.6) -> None:
        fr, path = self.fr, self.paths[self.runs % len(self.paths)]
        self.runs += 1
        t0 = time.perf_counter()
        image = fr.load_image_file(path)
        t1 = time.perf_counter()
        encodings = fr.face_encodings(image)
        t2 = time.perf_counter()
        distances = fr.face_distance(self.known, encodings[0])
        best = int(np.argmin(distances))
        _match = distances[best] <= tolerance
        t3 = time.perf_counter()
        probe = np.asarray(encodings[0], dtype=np.float32)
        _scan = int(np.argmin(np.linalg.norm(self.matrix - probe, axis=1)))
        t4 = time.perf_counter()
        if keep:
            for k, v in (
                ("load", t1 - t0),
                ("encode", t2 - t1),
                ("distance", t3 - t2),
                ("numpy_scan", t4 - t3),
                ("total", t3 - t0),
            ):
                self.stages[k].append(v)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"fr_{k}_p50_ms": med(v) * 1e3 for k, v in self.stages.items()}
        out["fr_total_p95_ms"] = pct(self.stages["total"], 95) * 1e3
        out["fr_list_build_s"] = self.list_build_s
        out["fr_reps"] = len(self.stages["total"])
        return out


def e2e_bench(
    data_dir: Path,
    key: str,
    probes: list[tuple[str, bytes]],
    requests: int,
    logs: Path,
    ref: tuple[Path, str] | None = None,
    fr: FrRun | None = None,
    fr_reps: int = 0,
) -> dict[str, Any]:
    """One client (interleaved with the reference server and face_recognition's flow), then two."""
    out: dict[str, Any] = {}
    gc.collect()
    server = Server(data_dir, 2, logs)
    other: Server | None = None
    try:
        out["startup_s"] = server.wait_ready()
        out.update({f"ready_{k}": v for k, v in server.memory().items()})
        if ref is not None:
            ref_logs = logs / "ref"
            ref_logs.mkdir(exist_ok=True)
            other = Server(ref[0], 2, ref_logs)
            other.wait_ready()
        main_c = httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120)
        ref_c = (
            httpx.Client(base_url=other.url, headers={"X-API-Key": ref[1]}, timeout=120)
            if other and ref
            else None
        )
        try:
            first, _ = identify_once(main_c, probes[0][1])
            out["first_identify_s"] = first
            out["first_ready_s"] = out["startup_s"] + first
            for i in range(6):
                identify_once(main_c, probes[i % len(probes)][1])
                if ref_c is not None:
                    identify_once(ref_c, probes[i % len(probes)][1])
            if fr is not None:
                fr.once(keep=False)
            mine, theirs = Samples(), Samples()
            fr_every = max(1, requests // max(1, fr_reps)) if fr is not None and fr_reps else 0
            t0 = time.perf_counter()
            for i in range(requests):
                name, photo = probes[i % len(probes)]
                secs, data = identify_once(main_c, photo)
                mine.add(name, secs, data)
                if ref_c is not None:
                    secs, data = identify_once(ref_c, photo)
                    theirs.add(name, secs, data)
                if fr is not None and fr_every and i % fr_every == 0 and fr.runs <= fr_reps:
                    fr.once()
            out.update(mine.summary("c1", None if ref_c or fr else time.perf_counter() - t0))
            if ref_c is not None:
                out.update(theirs.summary("ref"))
                out["ref_faces"] = ref[0].name
                out["c1_over_ref"] = out["c1_p50_ms"] / out["ref_p50_ms"]
        finally:
            main_c.close()
            if ref_c is not None:
                ref_c.close()
        if other is not None:
            other.stop()
            other = None
        # throughput: one client alone, then two concurrent clients
        for clients in (1, 2):
            samples = Samples()

            def run(worker: int, samples: Samples = samples) -> None:
                with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120) as c:
                    for i in range(requests):
                        name, photo = probes[(i + worker) % len(probes)]
                        secs, data = identify_once(c, photo)
                        samples.add(name, secs, data)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(run, range(clients)))
            wall = time.perf_counter() - t0
            summary = samples.summary(f"t{clients}", wall)
            out.update(summary)
            out[f"c{clients}_rps"] = summary[f"t{clients}_rps"]
            if clients == 2:
                out.update(samples.summary("c2", wall))
        out.update({f"after_{k}": v for k, v in server.memory().items()})
    finally:
        server.stop()
        if other is not None:
            other.stop()
    return out


# ---- face_recognition's way ----------------------------------------------------------------------


class FaceRecognitionWay:
    """face_recognition 1.3's load_image_file / face_encodings / face_distance, with dlib + numpy."""

    def __init__(self) -> None:
        import dlib

        from facesearch.pipeline.dlib_pack import DESCRIPTOR_MODEL, SHAPE_MODEL, models_dir

        self.detector = dlib.get_frontal_face_detector()
        self.pose_predictor_5_point = dlib.shape_predictor(str(models_dir() / SHAPE_MODEL))
        self.face_encoder = dlib.face_recognition_model_v1(str(models_dir() / DESCRIPTOR_MODEL))

    @staticmethod
    def load_image_file(file: str | Path, mode: str = "RGB") -> np.ndarray:
        import PIL.Image

        im = PIL.Image.open(file)
        if mode:
            im = im.convert(mode)
        return np.array(im)

    def face_encodings(self, face_image: np.ndarray, num_jitters: int = 1) -> list[np.ndarray]:
        # _raw_face_landmarks(face_image, None, "small"): _raw_face_locations(img, 1, "hog") then 5 points
        face_locations = self.detector(face_image, 1)
        raw_landmarks = [self.pose_predictor_5_point(face_image, loc) for loc in face_locations]
        return [
            np.array(self.face_encoder.compute_face_descriptor(face_image, lm, num_jitters))
            for lm in raw_landmarks
        ]

    @staticmethod
    def face_distance(face_encodings: list[np.ndarray], face_to_compare: np.ndarray) -> np.ndarray:
        if len(face_encodings) == 0:
            return np.empty(0)
        return np.asarray(np.linalg.norm(face_encodings - face_to_compare, axis=1))


# ---- enrolment -----------------------------------------------------------------------------------


def enrol_bench(faces: Path, photos: int, passes: int) -> dict[str, Any]:
    from facesearch.config import Settings
    from facesearch.pipeline.analyzer import AnalyseRequest, ProcessAnalyzer

    settings = Settings()
    paths = sorted((faces / "lfw").glob("*/*.jpg"))[:photos]
    datas = [p.read_bytes() for p in paths]

    def request(data: bytes) -> AnalyseRequest:
        return AnalyseRequest(
            pack="dlib", data=data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels
        )

    def analyse(analyzer: Any, data: bytes) -> bool:
        try:
            analyzer.analyse(request(data))
            return True
        except Exception:
            return False

    pools = {w: ProcessAnalyzer(w) for w in (1, 2)}
    rates: dict[int, list[float]] = {1: [], 2: []}
    try:
        for w, pool in pools.items():  # warm up: spawn and load the models in every worker
            with ThreadPoolExecutor(2 * w) as tp:
                list(tp.map(lambda d, pool=pool: analyse(pool, d), datas[: 4 * w]))
        for _ in range(passes):
            for w, pool in pools.items():
                t0 = time.perf_counter()
                with ThreadPoolExecutor(2 * w) as tp:
                    list(tp.map(lambda d, pool=pool: analyse(pool, d), datas))
                rates[w].append(len(datas) / (time.perf_counter() - t0))
    finally:
        for pool in pools.values():
            pool.close()
    return {
        "photos": len(datas),
        "passes": passes,
        "w1_photos_per_s": med(rates[1]),
        "w2_photos_per_s": med(rates[2]),
        "ratio": med([b / a for a, b in zip(rates[1], rates[2], strict=True)]),
        "samples": rates,
    }


# ---- report --------------------------------------------------------------------------------------


def fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(res: dict[str, Any]) -> str:
    lines: list[str] = []
    s = res["settings"]
    lines.append(f"# Speed at scale ({s['date']}, {s['cpus']} CPUs, {s['machine']})\n")
    lines.append(
        f"{s.get('pack', 'dlib')} pack ({s.get('dim', 128)}-d), "
        f"default threshold {s['threshold_similarity']} = "
        f"distance {s['threshold_distance']:.4f}; "
        f"HNSW M={s['hnsw_m']} ef_construction={s['hnsw_ef_construction']} ef_search={s['hnsw_ef_search']}; "
        f"the service scans exactly below {s['small_partition']:,} faces. Medians of {s['queries']} queries "
        f"(search) and {s['e2e_requests']} requests per client (HTTP). "
        "Shared noisy machine: compare ratios.\n"
    )
    rows = res["sizes"]
    lines.append(
        "Load average (1, 5, 15 min) before / after each gallery's measurements: "
        + "; ".join(
            f"{r['faces']:,}: {r['load']['before']} / {r['load']['after']}"
            for r in res["sizes"]
            if "load" in r
        )
        + "\n"
    )
    lines.append("## Search (index alone, one thread)\n")
    head = [
        "faces",
        "exact p50 / p95 ms",
        "HNSW p50 / p95 ms (alone p50)",
        "identify-like p50 ms exact / HNSW",
        "batch q/s exact / HNSW",
        "recall@10 known / unknown",
        "recall within threshold k=10 / k=100",
        "identify top-1 agreement",
        "build s exact / HNSW",
        "snapshot save / load s exact",
        "snapshot save / load s HNSW",
        "B/face exact / HNSW",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        x = r["search"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['faces']:,}",
                    f"{x['exact_p50_ms']:.3f} / {x['exact_p95_ms']:.3f}",
                    f"{x['hnsw_p50_ms']:.3f} / {x['hnsw_p95_ms']:.3f} ({x['hnsw_alone_p50_ms']:.3f})",
                    f"{x['exact_identify_p50_ms']:.3f} / {x['hnsw_identify_p50_ms']:.3f}",
                    f"{x['exact_batch_qps']:,.0f} / {x['hnsw_batch_qps']:,.0f}",
                    f"{x['recall10_known']:.4f} / {x['recall10_unknown']:.4f}",
                    f"{x['recall_threshold']:.4f} / {x['recall_threshold100']:.4f}",
                    f"{x['identify_agreement']:.4f}",
                    f"{x['exact_build_s']:.2f} / {x['hnsw_build_s']:.1f}",
                    f"{x['exact_save_s']:.2f} / {x['exact_load_s']:.2f}",
                    f"{x['hnsw_save_s']:.2f} / {x['hnsw_load_s']:.2f}",
                    f"{x['exact_bytes_per_face']:,.0f} / {x['hnsw_bytes_per_face']:,.0f}",
                ]
            )
            + " |"
        )
    lines.append(
        "\nRSS growth per face while building (exact / exact + HNSW): "
        + "; ".join(
            f"{r['faces']:,}: {r['search']['exact_rss_per_face']:,.0f} / "
            f"{r['search']['hnsw_rss_per_face']:,.0f} B"
            for r in rows
        )
        + ". Two threads searching at once (identify-like), rate over one thread: "
        + "; ".join(
            f"{r['faces']:,}: exact {r['search']['exact_threads2_speedup']:.2f}x, "
            f"HNSW {r['search']['hnsw_threads2_speedup']:.2f}x"
            for r in rows
        )
        + ". `recall within threshold`: share of the exact top-k results within the default distance that "
        "HNSW returns too. `identify top-1 agreement`: share of queries where HNSW and the exact scan give "
        "the same answer to identify (best person within the threshold, or none). HNSW p50/p95 are measured "
        "interleaved with exact scans (cold caches); `alone`: HNSW queries back to back.\n"
    )
    lines.append("## HNSW ef_search (the graph alone, k=10)\n")
    lines.append(
        "| faces | "
        + " | ".join(f"ef={ef}: p50 ms / recall@10 / within thr. / top-1 agreement" for ef in EF_SWEEP)
        + " |"
    )
    lines.append("|" + "---|" * (len(EF_SWEEP) + 1))
    for r in rows:
        x = r["search"]
        cells = [
            f"{x[f'ef{ef}_p50_ms']:.3f} / {x[f'ef{ef}_recall10']:.4f} / "
            f"{x[f'ef{ef}_recall_threshold']:.4f} / {x[f'ef{ef}_identify_agreement']:.4f}"
            for ef in EF_SWEEP
            if f"ef{ef}_identify_agreement" in x
        ]
        lines.append(f"| {r['faces']:,} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("## Identify over HTTP (640x480 probe, one face; `facesearch serve`, 2 worker processes)\n")
    head = [
        "faces",
        "1 client p50 / p95 ms",
        "1 client req/s",
        "2 clients p50 / p95 ms",
        "2 clients req/s",
        "stages p50 ms (1 client): decode / detect / embed / search / query / HTTP",
        "p50 / smallest gallery's (interleaved)",
        "correct",
        "commercial ms",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        e = r.get("e2e")
        if not e:
            continue
        st = e["c1_stages_p50_ms"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['faces']:,}",
                    f"{e['c1_p50_ms']:.1f} / {e['c1_p95_ms']:.1f}",
                    f"{e['c1_rps']:.1f}",
                    f"{e['c2_p50_ms']:.1f} / {e['c2_p95_ms']:.1f}",
                    f"{e['c2_rps']:.1f}",
                    " / ".join(
                        f"{st.get(k, 0):.1f}"
                        for k in (
                            "decode_ms",
                            "detect_ms",
                            "embed_ms",
                            "search_ms",
                            "query_time_ms",
                            "http_overhead_ms",
                        )
                    ),
                    f"{e['c1_over_ref']:.3f} ({e['c1_p50_ms']:.1f} / {e['ref_p50_ms']:.1f})"
                    if "c1_over_ref" in e
                    else "-",
                    f"{min(e['c1_correct'], e['c2_correct']):.2f}",
                    fmt(COMMERCIAL.get(r["faces"])),
                ]
            )
            + " |"
        )
    lines.append("\n## Server start-up and memory (snapshot load, never re-embedding)\n")
    head = [
        "faces",
        "SQL bulk fill s",
        "start-up s",
        "first identify s",
        "server RSS MB ready / after",
        "peak MB",
        "worker processes RSS MB",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        e = r.get("e2e")
        if not e:
            continue
        lines.append(
            f"| {r['faces']:,} | {r['sql_fill_s']:.1f} | {e['startup_s']:.2f} | "
            f"{e['first_identify_s']:.2f} | "
            f"{e['ready_server_rss'] / 2**20:,.0f} / {e['after_server_rss'] / 2**20:,.0f} | "
            f"{e['after_server_peak_rss'] / 2**20:,.0f} | "
            f"{e['after_workers_rss'] / 2**20:,.0f} ({e['after_workers']}) |"
        )
    lines.append("\n## face_recognition's way, same probes and gallery (one process)\n")
    head = [
        "faces",
        "load ms",
        "face_encodings ms",
        "face_distance ms",
        "float32 numpy scan ms",
        "total p50 ms",
        "scan / our search (HTTP search_ms)",
        "numpy scan / our search",
        "scan / our HNSW index p50",
        "total / our identify HTTP p50",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in rows:
        f = r.get("fr")
        if not f:
            continue
        e, x = r.get("e2e") or {}, r["search"]
        search_ms = (e.get("c1_stages_p50_ms") or {}).get("search_ms")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['faces']:,}",
                    f"{f['fr_load_p50_ms']:.1f}",
                    f"{f['fr_encode_p50_ms']:.1f}",
                    f"{f['fr_distance_p50_ms']:.1f}",
                    f"{f.get('fr_numpy_scan_p50_ms', float('nan')):.2f}",
                    f"{f['fr_total_p50_ms']:.1f}",
                    f"{f['fr_distance_p50_ms'] / search_ms:,.0f}x" if search_ms else "-",
                    f"{f.get('fr_numpy_scan_p50_ms', float('nan')) / search_ms:,.1f}x" if search_ms else "-",
                    f"{f['fr_distance_p50_ms'] / x['hnsw_identify_p50_ms']:,.0f}x",
                    f"{f['fr_total_p50_ms'] / e['c1_p50_ms']:.2f}x" if e else "-",
                ]
            )
            + " |"
        )
    en = res.get("enrol")
    if en:
        lines.append("\n## Enrolment throughput (ProcessAnalyzer, detect + embed)\n")
        lines.append(
            f"{en['photos']} LFW photos (250x250), {en['passes']} interleaved passes: 1 worker "
            f"{en['w1_photos_per_s']:.1f} photos/s, 2 workers {en['w2_photos_per_s']:.1f} photos/s, "
            f"ratio {en['ratio']:.2f}x.\n"
        )
    fit = res.get("fit")
    if fit:
        lines.append("## Synthetic data vs real LFW descriptors\n")
        lines.append(f"Source: {s['real_source']}; {s['real_faces']} faces of {s['real_people']} people.\n")
        keys = list(fit["real"])
        lines.append("| | " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * (len(keys) + 1))
        for name in ("real", "synthetic"):
            lines.append(f"| {name} | " + " | ".join(fmt(fit[name][k], 4) for k in keys) + " |")
    lines.append("\n## Targets\n")
    lines.append("| target | measured | met |")
    lines.append("|---|---|---|")
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {r["faces"]: r for r in res["sizes"]}
    out: list[dict[str, Any]] = []
    big = max(rows) if rows else None
    small = min(rows) if rows else None

    def add(target: str, measured: str, met: bool) -> None:
        out.append({"target": target, "measured": measured, "met": bool(met)})

    if big is None or small is None:
        return out
    b, s = rows[big], rows[small]
    tag = f"{big:,}"
    if b.get("e2e") and s.get("e2e"):
        p = b["e2e"]["c1_p50_ms"]
        add(f"identify e2e 1 client p50 <= 100 ms at {tag}", f"{p:.1f} ms", p <= 100)
        ratio = b["e2e"].get("c1_over_ref") or p / s["e2e"]["c1_p50_ms"]
        add(f"identify e2e at {tag} <= 1.2x the {small:,} figure", f"{ratio:.2f}x", ratio <= 1.2)
    x = b["search"]
    add(f"search exact p50 <= 25 ms at {tag}", f"{x['exact_p50_ms']:.2f} ms", x["exact_p50_ms"] <= 25)
    # Queries back to back, as a server runs them; the interleaved figure follows an exact scan of
    # the whole gallery before every query (to share background load), which evicts the graph.
    # Judged with the caches disturbed (interleaved), as a server that also analyses photos runs it.
    alone = x["hnsw_alone_p50_ms"]
    add(
        f"search HNSW p50 <= 1 ms at {tag} (interleaved with exact scans)",
        f"{x['hnsw_p50_ms']:.3f} ms ({alone:.3f} ms back to back)",
        x["hnsw_p50_ms"] <= 1,
    )
    add(
        f"HNSW recall within threshold >= 0.99 at {tag}",
        f"{x['recall_threshold']:.4f}",
        x["recall_threshold"] >= 0.99,
    )
    if res.get("enrol"):
        r = res["enrol"]["ratio"]
        add("2 workers enrol >= 1.7x one", f"{r:.2f}x", r >= 1.7)
    if b.get("e2e"):
        e = b["e2e"]
        add(f"server with {tag} faces starts <= 15 s", f"{e['startup_s']:.2f} s", e["startup_s"] <= 15)
        total = e["after_server_rss"] + e["after_workers_rss"]
        add(
            f"server with {tag} faces < 2 GB RSS, its workers counted",
            f"{total / 2**30:.2f} GiB ({e['after_server_rss'] / 2**30:.2f} GiB server "
            f"+ {e['after_workers_rss'] / 2**30:.2f} GiB workers)",
            total < 2 * 2**30,
        )
    if b.get("fr"):
        f = b["fr"]
        if b.get("e2e"):
            sm = b["e2e"]["c1_stages_p50_ms"]["search_ms"]
            add(
                f"search step >= 50x faster than face_distance at {tag}",
                f"{f['fr_distance_p50_ms'] / sm:,.0f}x",
                f["fr_distance_p50_ms"] / sm >= 50,
            )
            r2 = f["fr_total_p50_ms"] / b["e2e"]["c1_p50_ms"]
            add(f"identify e2e >= 4x faster than face_recognition at {tag}", f"{r2:.2f}x", r2 >= 4)
    return out


# ---- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--max", type=int, default=int(os.environ.get("BENCH_MAX") or 1_000_000))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--e2e-requests", type=int, default=30)
    parser.add_argument("--fr-reps", type=int, default=8)
    parser.add_argument("--enrol-photos", type=int, default=80)
    parser.add_argument("--workdir", default=os.environ.get("BENCH_DIR") or "/tmp/fs-bench")
    parser.add_argument(
        "--out", default=None, help="default bench/results/latest (latest-PACK for other packs)"
    )
    parser.add_argument(
        "--pack", default="dlib", help="dlib (everything), or fusion / onnx: the search section only"
    )
    parser.add_argument("--faces", default=None)
    parser.add_argument(
        "--skip", default="", help="comma-separated: search,e2e,fr,enrol (search is always run)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the galleries in --workdir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.pack != "dlib":
        skip |= {"e2e", "fr", "enrol"}  # the HTTP and face_recognition sections are dlib's
    out_path = (
        Path(args.out)
        if args.out
        else Path(__file__).resolve().parent
        / "results"
        / ("latest" if args.pack == "dlib" else f"latest-{args.pack}")
    )
    sizes = [int(s) for s in args.sizes.split(",") if s.strip() and int(s) <= args.max]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    _claim(work)
    faces = faces_dir(args.faces)

    from facesearch.pipeline import FacePipeline, build_pack

    pack = build_pack(args.pack)
    threshold = float(pack.distance_for_similarity(pack.default_threshold))
    log(f"reading real LFW descriptors ({args.pack})")
    real = lfw_embeddings(faces, args.pack)
    model = FittedModel.fit(real)
    people: list[tuple[str, np.ndarray]] = []
    probes: list[tuple[str, bytes]] = []
    if args.pack == "dlib":
        pipeline = FacePipeline(pack)
        people = [
            (name, pipeline.analyse_bytes(data).faces[0].embedding) for name, data in people_photos(faces)
        ]
        probes = probe_photos(faces)
    probe_dir = work / "probes"
    probe_dir.mkdir(exist_ok=True)
    probe_paths = []
    for name, data in probes:
        (probe_dir / name).write_bytes(data)
        probe_paths.append(probe_dir / name)

    res: dict[str, Any] = {
        "settings": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
            "sizes": sizes,
            "queries": args.queries * 3 // 2,
            "e2e_requests": args.e2e_requests,
            "pack": args.pack,
            "dim": int(real.vectors.shape[1]),
            "threshold_similarity": pack.default_threshold,
            "threshold_distance": threshold,
            "hnsw_m": DEFAULT_M,
            "hnsw_ef_construction": DEFAULT_EF_CONSTRUCTION,
            "hnsw_ef_search": DEFAULT_EF_SEARCH,
            "small_partition": SMALL_PARTITION,
            "per_synthetic_person": PER_PERSON,
            "real_source": real.source,
            "real_faces": len(real.vectors),
            "real_people": len(real.names),
            "probes": [f"probes/{n} cropped 4:3 to 640x480" for n, _ in probes],
            "commit": _git("rev-parse", "--short", "HEAD"),
            "uncommitted_files": len(_git("status", "--porcelain").splitlines()),
        },
        "fit": fit_report(real, model, threshold, args.seed),
        "sizes": [],
    }
    if "enrol" not in skip:
        log("enrolment throughput")
        res["enrol"] = enrol_bench(faces, args.enrol_photos, 3)
        log(f"  {res['enrol']['w1_photos_per_s']:.1f} / {res['enrol']['w2_photos_per_s']:.1f} photos/s")
    fr = FaceRecognitionWay() if "fr" not in skip else None
    refs: dict[int, tuple[Path, str]] = {}
    for n in sizes:
        log(f"gallery of {n:,} faces")
        gallery = Gallery(n, real, model, people, args.seed, args.queries)
        data_dir = work / f"g{n}"
        fill_s, filled = fill_store(data_dir, gallery, args.pack)
        log(f"  SQL fill {fill_s:.1f} s")
        row: dict[str, Any] = {"faces": n, "gallery": gallery.parts, "sql_fill_s": fill_s}
        row["load"] = {"before": loadavg()}
        row["search"] = search_bench(gallery, filled, threshold, data_dir / "index")
        log(
            f"  search p50 exact {row['search']['exact_p50_ms']:.3f} ms, "
            f"hnsw {row['search']['hnsw_p50_ms']:.3f} ms, "
            f"recall {row['search']['recall10']:.4f} / {row['search']['recall_threshold']:.4f}"
        )
        reps = args.fr_reps if n < 1_000_000 else max(3, args.fr_reps // 2)
        fr_run = FrRun(fr, gallery.vectors, probe_paths) if fr is not None else None
        del gallery
        gc.collect()
        if "e2e" not in skip:
            logs = work / f"logs-{n}"
            logs.mkdir(exist_ok=True)
            ref = refs.get(sizes[0]) if n != sizes[0] else None
            row["e2e"] = e2e_bench(
                data_dir, filled["key"], probes, args.e2e_requests, logs, ref, fr_run, reps
            )
            log(f"  e2e p50 {row['e2e']['c1_p50_ms']:.1f} ms, start-up {row['e2e']['startup_s']:.2f} s")
        elif fr_run is not None:
            for i in range(reps + 1):
                fr_run.once(keep=i > 0)
        if fr_run is not None:
            row["fr"] = fr_run.summary()
            log(f"  face_recognition total {row['fr']['fr_total_p50_ms']:.1f} ms")
            del fr_run
            gc.collect()
        refs[n] = (data_dir, filled["key"])
        row["load"]["after"] = loadavg()
        res["sizes"].append(row)
        if not args.keep and n != sizes[0]:
            shutil.rmtree(data_dir, ignore_errors=True)
        _write(res, out_path)
    if not args.keep and sizes:
        shutil.rmtree(work / f"g{sizes[0]}", ignore_errors=True)
    res["targets"] = targets(res)
    _write(res, out_path)
    print(markdown(res))
    return 0


def _claim(work: Path) -> None:
    """Refuse a work folder another running scale.py uses (its galleries would be replaced)."""
    lock = work / ".scale.pid"
    try:
        other = int(lock.read_text())
        os.kill(other, 0)
    except (OSError, ValueError):
        lock.write_text(str(os.getpid()))
        return
    sys.exit(f"bench/scale.py: {work} is in use by process {other}; pass another --workdir")


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _write(res: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    res.setdefault("targets", [])
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=_plain) + "\n")
    out.with_suffix(".md").write_text(markdown(res))


def _plain(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(type(v))


if __name__ == "__main__":
    sys.exit(main())
