"""HNSW-specific checks: recall against the exact scan, exact=True, graph upkeep under churn."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.index import ExactIndex, HnswIndex
from synthetic import face_like


@pytest.fixture(scope="module")
def gallery_20k() -> tuple[ExactIndex, HnswIndex, np.ndarray]:
    data = face_like(20_000, dim=128, per_identity=5, seed=0)
    ids = np.arange(len(data.vectors))
    # default M / ef parameters; the default small-partition threshold (50k) would skip the graph
    exact, hnsw = ExactIndex(), HnswIndex(small_partition=1_000)
    exact.add(0, ids, data.labels, data.vectors)
    hnsw.add(0, ids, data.labels, data.vectors)
    queries = np.vstack([data.probes(150, seed=1), data.probes(50, seed=2, known=False)])
    return exact, hnsw, queries


@pytest.mark.parametrize(("kind", "different"), [("isotropic", (1.3, 1.6)), ("dlib", (0.75, 0.95))])
def test_synthetic_data_is_face_like(kind: str, different: tuple[float, float]) -> None:
    data = face_like(2_000, seed=3, kind=kind)
    same = np.median(np.linalg.norm(data.vectors[:400] - data.vectors[400:800], axis=1))
    other = np.median(np.linalg.norm(data.vectors[:400] - data.vectors[1:401], axis=1))
    assert (data.labels[:400] == data.labels[400:800]).all()
    assert 0.35 < same < 0.5 and different[0] < other < different[1]
    unknown = data.probes(200, known=False)
    assert different[0] < np.median(np.linalg.norm(unknown[:100] - unknown[100:], axis=1)) < different[1]


def test_hnsw_recall_at_10_against_exact(gallery_20k: tuple[ExactIndex, HnswIndex, np.ndarray]) -> None:
    exact, hnsw, queries = gallery_20k
    assert hnsw.graph_size(0) == 20_000
    truth = exact.search_batch([0], queries, 10)
    fast = hnsw.search_batch([0], queries, 10)
    single = [hnsw.search([0], q, 10) for q in queries[:20]]
    assert [[h.face_id for h in s] for s in single] == [[h.face_id for h in f] for f in fast[:20]]
    hits = sum(len({h.face_id for h in t} & {h.face_id for h in f}) for t, f in zip(truth, fast, strict=True))
    recall = hits / (10 * len(queries))
    assert recall >= 0.99, recall


def test_exact_flag_matches_exact_index(gallery_20k: tuple[ExactIndex, HnswIndex, np.ndarray]) -> None:
    exact, hnsw, queries = gallery_20k
    for opts in ({}, {"unique_persons": True}):
        a = exact.search_batch([0], queries[:50], 10, **opts)  # type: ignore[arg-type]
        b = hnsw.search_batch([0], queries[:50], 10, exact=True, **opts)  # type: ignore[arg-type]
        assert a == b
    for q in queries[:10]:
        assert exact.search([0], q, 5) == hnsw.search([0], q, 5, exact=True)


def test_unique_persons_on_graph(gallery_20k: tuple[ExactIndex, HnswIndex, np.ndarray]) -> None:
    exact, hnsw, queries = gallery_20k
    for q in queries[:30]:
        hits = hnsw.search([0], q, 10, unique_persons=True)
        assert len({h.person_id for h in hits}) == 10
        truth = exact.search([0], q, 10, unique_persons=True)
        assert hits[0] == truth[0]


def test_graph_follows_churn() -> None:
    rng = np.random.default_rng(5)
    index = HnswIndex(small_partition=100)
    x = rng.standard_normal((600, 32)).astype(np.float32)
    index.add(0, np.arange(300), np.arange(300) % 50, x[:300])
    assert index.graph_size(0) == 300
    for step in range(20):  # remove, re-add (same and new ids), upsert
        gone = rng.choice(600, 40, replace=False)
        index.remove_faces(0, gone.tolist())
        back = rng.choice(600, 50, replace=False)
        index.add(0, back, back % 50, x[back] + 0.001 * step)
        assert index.graph_size(0) == index.count(0)
    live = set(range(600))
    q = x[0]
    exact_ids = {h.face_id for h in index.search([0], q, 20, exact=True)}
    fast_ids = {h.face_id for h in index.search([0], q, 20)}
    assert fast_ids == exact_ids and exact_ids <= live
    index.remove_faces(0, list(range(600)))
    assert index.count(0) == 0 and index.graph_size(0) is None
    assert index.search([0], q, 5) == []


def test_remove_below_threshold_drops_graph_and_regrows() -> None:
    index = HnswIndex(small_partition=20)
    x = np.random.default_rng(6).standard_normal((40, 8)).astype(np.float32)
    index.add(0, np.arange(40), np.arange(40), x)
    assert index.graph_size(0) == 40
    index.remove_faces(0, list(range(35)))
    assert index.graph_size(0) is None
    index.add(0, np.arange(40), np.arange(40), x)
    assert index.graph_size(0) == 40
    assert index.search([0], x[3], 1)[0].face_id == 3


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(st.integers(0, 60), min_size=1, max_size=15), st.integers(0, 9)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, 70), max_size=10), st.integers(0, 9)),
        st.tuples(st.just("person"), st.just([]), st.integers(0, 9)),
        st.tuples(st.just("groups"), st.lists(st.sampled_from(["a", "b"]), max_size=2), st.integers(0, 9)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, seed=st.integers(0, 2**16))
def test_model_based_against_brute_force(ops: list[tuple[str, list[Any], int]], seed: int) -> None:
    """Random mutation sequences: every backend agrees with a plain dict model."""
    rng = np.random.default_rng(seed)
    indexes = [ExactIndex(), HnswIndex(small_partition=4)]
    faces: dict[int, tuple[int, np.ndarray]] = {}
    groups: dict[int, frozenset[str]] = {}
    for op, ids, person in ops:
        if op == "add":
            vecs = rng.standard_normal((len(ids), 6)).astype(np.float32)
            for i, f in enumerate(ids):
                faces[f] = (person, vecs[i])
            for ix in indexes:
                ix.add(0, ids, [person] * len(ids), vecs)
        elif op == "remove":
            for f in ids:
                faces.pop(f, None)
            for ix in indexes:
                ix.remove_faces(0, ids)
        elif op == "person":
            faces = {f: v for f, v in faces.items() if v[0] != person}
            groups.pop(person, None)
            for ix in indexes:
                ix.remove_person(0, person)
        else:
            groups[person] = frozenset(ids) or frozenset({"default"})
            for ix in indexes:
                ix.set_person_groups(0, person, ids)
    q = rng.standard_normal(6).astype(np.float32)
    ordered = sorted(faces, key=lambda f: (float(np.linalg.norm(faces[f][1] - q)), f))
    in_a = [f for f in ordered if "a" in groups.get(faces[f][0], {"default"})]
    for ix in indexes:
        assert ix.count(0) == len(faces)
        assert [h.face_id for h in ix.search([0], q, 8)] == ordered[:8]
        assert [h.face_id for h in ix.search([0], q, 8, groups=["a"])] == in_a[:8]
        seen: list[int] = []
        for f in ordered:
            if faces[f][0] not in seen:
                seen.append(faces[f][0])
        assert [h.person_id for h in ix.search([0], q, 4, unique_persons=True)] == seen[:4]


def test_concurrent_mutations_and_searches() -> None:
    index = HnswIndex(small_partition=50)
    rng = np.random.default_rng(7)
    base = rng.standard_normal((400, 16)).astype(np.float32)
    index.add(0, np.arange(400), np.arange(400) % 40, base)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(100):
                fid = 1000 + offset * 1000 + i
                index.add(0, [fid], [fid % 40], base[i : i + 1])
                if i % 3 == 0:
                    index.remove_faces(0, [fid - 1, i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for i in range(150):
                index.search([0], base[i % 400], 5, unique_persons=bool(i % 2))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert index.graph_size(0) == index.count(0)


def test_snapshot_restores_graph_without_rebuilding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    index = HnswIndex(small_partition=100)
    index.add(0, np.arange(300), np.arange(300), x)
    index.remove_faces(0, list(range(0, 300, 7)))  # deleted slots travel with the graph
    index.save(tmp_path)
    expected = index.search_batch([0], x[:20], 5)

    def no_build(*args: object) -> None:
        raise AssertionError("graph was rebuilt instead of loaded")

    monkeypatch.setattr(HnswIndex, "_build", no_build)
    loaded = HnswIndex.load(tmp_path, small_partition=100)
    assert loaded.graph_size(0) == index.count(0)
    assert loaded.search_batch([0], x[:20], 5) == expected
    loaded.add(0, [0, 1000], [0, 1000], x[:2])  # face 0 was removed: both are new, filling deleted slots
    assert loaded.graph_size(0) == loaded.count(0) == index.count(0) + 2
    monkeypatch.undo()
    other_m = HnswIndex.load(tmp_path, m=8, small_partition=100)  # different M: rebuilt
    assert other_m.graph_size(0) == index.count(0)
    assert other_m.search_batch([0], x[:20], 5) == expected
