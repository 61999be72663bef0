"""An HNSW partition split into shards searched in parallel (hnsw._Graph with shards > 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesearch.index import ExactIndex, HnswIndex, open_index
from synthetic import face_like


def _pair(shards: int, n: int = 4_000) -> tuple[ExactIndex, HnswIndex, np.ndarray]:
    data = face_like(n, dim=64, per_identity=4, seed=11)
    exact, hnsw = ExactIndex(), HnswIndex(small_partition=500, shards=shards)
    ids = np.arange(n)
    exact.add(0, ids, data.labels, data.vectors)
    hnsw.add(0, ids, data.labels, data.vectors)
    probes = np.vstack([data.probes(60, seed=12), data.probes(20, seed=13, known=False)])
    return exact, hnsw, probes


def _recall(exact: ExactIndex, hnsw: HnswIndex, probes: np.ndarray) -> float:
    truth, fast = exact.search_batch([0], probes, 10), hnsw.search_batch([0], probes, 10)
    hits = sum(len({h.face_id for h in t} & {h.face_id for h in f}) for t, f in zip(truth, fast, strict=True))
    return hits / (10 * len(probes))


def test_two_shards_split_the_faces_and_find_what_the_exact_scan_finds() -> None:
    exact, hnsw, probes = _pair(2)
    graph = hnsw._graphs[0]
    assert graph.shards == 2 and graph.counts == [2_000, 2_000]
    assert [int(ix.element_count) for ix in graph.indexes] == [2_000, 2_000]
    assert _recall(exact, hnsw, probes) >= 0.99
    # one query (shards searched in parallel threads) gives what the batch path gives
    single = [hnsw.search([0], q, 10) for q in probes[:25]]
    assert single == hnsw.search_batch([0], probes[:25], 10)
    for q in probes[:10]:
        assert hnsw.search([0], q, 1, unique_persons=True) == exact.search([0], q, 1, unique_persons=True)


def test_removals_and_updates_reach_the_right_shard() -> None:
    exact, hnsw, probes = _pair(2)
    graph = hnsw._graphs[0]
    gone = list(range(0, 4_000, 3))  # labels of both parities
    hnsw.remove_faces(0, gone)
    exact.remove_faces(0, gone)
    assert sum(graph.counts) == 4_000 - len(gone) and min(graph.counts) > 1_000
    moved = np.arange(1, 200, 3)
    new_vectors = face_like(len(moved), dim=64, seed=21).vectors
    hnsw.add(0, moved, np.full(len(moved), 7), new_vectors)
    exact.add(0, moved, np.full(len(moved), 7), new_vectors)
    for i in range(0, len(moved), 9):
        assert hnsw.search([0], new_vectors[i], 1)[0].face_id == int(moved[i])
    assert _recall(exact, hnsw, probes) >= 0.98
    hits = [h.face_id for hs in hnsw.search_batch([0], probes, 10) for h in hs]
    assert not set(hits) & set(gone)


def test_sharded_snapshot_round_trip_and_old_single_graphs_kept(tmp_path: Path) -> None:
    _, hnsw, probes = _pair(2)
    hnsw.save(tmp_path / "two")
    loaded = HnswIndex.load(tmp_path / "two", small_partition=500)
    assert loaded._graphs[0].shards == 2 and loaded._graphs[0].counts == [2_000, 2_000]
    assert loaded.search_batch([0], probes, 10) == hnsw.search_batch([0], probes, 10)
    # a graph saved with one shard (as every snapshot before shards) loads as it is, not rebuilt
    _, one, _ = _pair(1)
    one.save(tmp_path / "one")
    again = open_index("memory://?small_partition=500&shards=2", tmp_path / "one")
    assert isinstance(again, HnswIndex) and again._graphs[0].shards == 1
    assert again.search_batch([0], probes, 10) == one.search_batch([0], probes, 10)


def test_shard_count_is_checked() -> None:
    assert HnswIndex(shards=1).shards == 1
    with pytest.raises(ValueError, match="shards"):
        HnswIndex(shards=17)
