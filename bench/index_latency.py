"""Latency, recall, build time and memory of the exact and HNSW index backends on face-like vectors.

Usage: python bench/index_latency.py [--sizes 1000,10000,100000] [--dim 128] [--queries 200]
Prints a Markdown table. Queries are new samples of enrolled identities ("known") plus samples of
identities not in the gallery ("unknown"); recall@10 is measured against the exact scan.
By default the HNSW graph is used at every size (--small 1) so the two can be compared; the
service's default threshold (hnsw.SMALL_PARTITION) serves smaller partitions by the exact scan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facesearch.index import ExactIndex, HnswIndex, VectorIndex, open_index
from facesearch.index.hnsw import DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_M, SMALL_PARTITION

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the synthetic data helper
from synthetic import face_like  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def latencies(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[float, float]:
    for q in queries[:10]:
        index.search([0], q, k)
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search([0], q, k)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, float(np.percentile(times, 95)) * 1e3


def recall(truth: VectorIndex, fast: VectorIndex, queries: np.ndarray, k: int) -> float:
    a = truth.search_batch([0], queries, k)
    b = fast.search_batch([0], queries, k)
    found = sum(len({h.face_id for h in x} & {h.face_id for h in y}) for x, y in zip(a, b, strict=True))
    return found / max(1, sum(len(x) for x in a))


def bench_size(n: int, args: argparse.Namespace) -> list[str]:
    data = face_like(n, dim=args.dim, seed=args.seed, kind=args.kind)
    ids = np.arange(n)
    known = data.probes(args.queries, seed=args.seed + 1)
    unknown = data.probes(max(1, args.queries // 4), seed=args.seed + 2, known=False)
    queries = np.vstack([known, unknown])

    rss0 = rss_bytes()
    exact = ExactIndex()
    t_exact = timed(lambda: exact.add(0, ids, data.labels, data.vectors))
    rss1 = rss_bytes()
    hnsw = HnswIndex(
        m=args.m, ef_construction=args.ef_construction, ef_search=args.ef_search, small_partition=args.small
    )
    t_hnsw = timed(lambda: hnsw.add(0, ids, data.labels, data.vectors))
    rss2 = rss_bytes()

    ex_med, ex_p95 = latencies(exact, queries, args.k)
    hn_med, hn_p95 = latencies(hnsw, queries, args.k)
    r_known = recall(exact, hnsw, known, args.k)
    r_unknown = recall(exact, hnsw, unknown, args.k)
    uq_med, _ = latencies_unique(hnsw, queries, args.k)

    with tempfile.TemporaryDirectory() as tmp:
        t_save = timed(lambda: hnsw.save(Path(tmp)))
        t_load = timed(lambda: open_index(f"hnsw://?m={args.m}&small_partition={args.small}", Path(tmp)))

    graph = "graph" if hnsw.graph_size(0) is not None else "exact scan (small)"
    return [
        f"{n:,}",
        f"{ex_med:.3f} / {ex_p95:.3f}",
        f"{hn_med:.3f} / {hn_p95:.3f} ({graph})",
        f"{uq_med:.3f}",
        f"{r_known:.4f} / {r_unknown:.4f}",
        f"{t_exact:.2f} / {t_hnsw:.2f}",
        f"{t_save:.2f} / {t_load:.2f}",
        f"{(rss1 - rss0) / n:,.0f} / {(rss2 - rss1) / n:,.0f}",
        f"{exact.memory_bytes() / n:,.0f} / {hnsw.memory_bytes() / n:,.0f}",
    ]


def latencies_unique(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[float, float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search([0], q, k, unique_persons=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, float(np.percentile(times, 95)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, default=DEFAULT_M)
    parser.add_argument("--ef-construction", type=int, default=DEFAULT_EF_CONSTRUCTION)
    parser.add_argument("--ef-search", type=int, default=DEFAULT_EF_SEARCH)
    parser.add_argument(
        "--small", type=int, default=1, help=f"small-partition threshold (service default {SMALL_PARTITION})"
    )
    parser.add_argument("--kind", choices=["isotropic", "dlib"], default="isotropic", help="synthetic data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"HNSW M={args.m} ef_construction={args.ef_construction} ef_search={args.ef_search} "
        f"small_partition={args.small}; {args.kind} data, dim={args.dim}; k={args.k}; "
        f"{os.cpu_count()} CPUs\n"
    )
    header = [
        "faces",
        "exact ms median / p95",
        "hnsw ms median / p95",
        "hnsw unique_persons ms",
        "hnsw recall@10 known / unknown",
        "build s exact / hnsw",
        "hnsw save / load s",
        "RSS B/face exact / +hnsw",
        "memory_bytes B/face exact / hnsw",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        print("| " + " | ".join(bench_size(size, args)) + " |", flush=True)


if __name__ == "__main__":
    main()
