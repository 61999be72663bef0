"""HNSW with two shards: searched by two threads, or one after the other, idle and with the other
core busy; and what the index does by itself (``ShardPool.busy``: serial when every core has a
runnable thread).

One gallery (``--faces``, default 60,000 synthetic face-like vectors of ``--dim`` dimensions),
the graph forced (small_partition=1). For each condition (idle; then one process spinning on a
core, as a worker analysing a photo does; then two) the three modes are interleaved query by
query, in a rotating order, so background noise and warm caches favour none of them; p50 / p90
of ``--queries`` one-query searches (k=10, one hit per person, as identify asks) each.

    .venv/bin/python bench/shards_busy.py                 # about 1-2 minutes
    .venv/bin/python bench/shards_busy.py --faces 200000 --dim 128
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from facesearch.index import HnswIndex
from facesearch.index.hnsw import ShardPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synthetic import face_like  # noqa: E402


def spin(stop: float) -> None:
    x = 0
    while time.time() < stop:
        x += 1


def measure(index: HnswIndex, queries: np.ndarray) -> dict[str, list[float]]:
    modes = {"two threads": False, "one thread": True, "automatic": None}
    out: dict[str, list[float]] = {m: [] for m in modes}
    original = ShardPool.busy
    try:
        names = list(modes)
        for i, q in enumerate(queries):
            for mode in names[i % 3 :] + names[: i % 3]:  # each mode first as often as the others
                busy = modes[mode]
                if busy is None:
                    ShardPool.busy = original  # type: ignore[method-assign]
                else:
                    ShardPool.busy = (lambda value: lambda self: value)(busy)  # type: ignore[method-assign]
                t0 = time.perf_counter()
                index.search([1], q, 10, unique_persons=True)  # as identify asks
                out[mode].append((time.perf_counter() - t0) * 1000)
    finally:
        ShardPool.busy = original  # type: ignore[method-assign]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=60_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=500)
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs two or more cores (one shard otherwise)", file=sys.stderr)
        return 2
    data = face_like(args.faces, args.dim, seed=3)
    vectors, owners = data.vectors, data.labels
    queries = np.vstack(
        [data.probes(args.queries // 2), data.probes(args.queries - args.queries // 2, known=False)]
    )
    index = HnswIndex(small_partition=1)
    t0 = time.perf_counter()
    index.add(1, list(range(1, len(vectors) + 1)), [int(o) + 1 for o in owners], vectors)
    index.search([1], queries[0], 10)  # builds the graph
    print(
        f"# HNSW shards, {args.faces:,} faces x {args.dim}-d, graph built in {time.perf_counter() - t0:.0f} s"
    )
    print()
    print("| other work | mode | p50 ms | p90 ms |")
    print("|---|---|---:|---:|")
    for spinners, condition in ((0, "idle"), (1, "one busy"), (2, "both busy")):
        procs = [
            multiprocessing.get_context("spawn").Process(target=spin, args=(time.time() + 600,))
            for _ in range(spinners)
        ]
        for proc in procs:
            proc.start()
        time.sleep(0.5 if procs else 0)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        res = measure(index, queries)
        for proc in procs:
            proc.terminate()
            proc.join()
        for mode, values in res.items():
            p90 = float(np.percentile(values, 90))
            print(f"| {condition} (load {load}) | {mode} | {statistics.median(values):.3f} | {p90:.3f} |")
    index.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
