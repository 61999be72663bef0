"""One behavioural suite run against every VectorIndex backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.index import ExactIndex, Hit, HnswIndex, VectorIndex, open_index
from facesearch.index.base import FloatArray
from facesearch.index.milvus import MilvusIndex
from milvusutil import emptied_after

DIM = 16
MakeIndex = Callable[[], VectorIndex]
URLS = {"exact": "exact://", "hnsw": "hnsw://", "hnsw-graph": "hnsw://?small_partition=8"}


def _make(kind: str) -> VectorIndex:
    if kind == "exact":
        return ExactIndex()
    if kind == "hnsw":
        return HnswIndex()
    return HnswIndex(small_partition=8)  # tiny threshold: the graph path really runs


@pytest.fixture(params=["exact", "hnsw", "hnsw-graph", pytest.param("milvus", marks=pytest.mark.milvus)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def milvus_url(kind: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """For the milvus backend: the session's milvus:// URL, emptied after the test."""
    if kind != "milvus":
        yield None
        return
    with emptied_after(request.getfixturevalue("milvus_session_url")) as url:
        yield url


@pytest.fixture
def make(kind: str, milvus_url: str | None) -> Iterator[MakeIndex]:
    """Each call gives a new index; for milvus, a new client of the same collections."""
    made: list[VectorIndex] = []

    def build() -> VectorIndex:
        index = open_index(milvus_url, None) if milvus_url else _make(kind)
        made.append(index)
        return index

    yield build
    for index in made:
        index.close()


def no_snapshots(kind: str) -> None:
    if kind == "milvus":
        pytest.skip("Milvus keeps its own data: the index writes no snapshot files")


@pytest.fixture
def index(make: MakeIndex) -> VectorIndex:
    return make()


def rand(n: int, seed: int = 0, dim: int = DIM) -> FloatArray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def brute(vectors: FloatArray, query: FloatArray, k: int) -> list[int]:
    d = np.linalg.norm(vectors - query, axis=1)
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]


def fids(hits: list[Hit]) -> list[int]:
    return [h.face_id for h in hits]


def test_add_and_search_order(index: VectorIndex) -> None:
    x = rand(60)
    index.add(1, np.arange(60), np.arange(60) // 3, x)
    q = rand(1, seed=9)[0]
    hits = index.search([1], q, 7)
    assert fids(hits) == brute(x, q, 7)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    np.testing.assert_allclose(
        [h.distance for h in hits], np.linalg.norm(x[fids(hits)] - q, axis=1), rtol=1e-5
    )
    assert all(h.person_id == h.face_id // 3 and h.partition == 1 for h in hits)
    assert all(isinstance(h.distance, float) for h in hits)
    assert index.count(1) == 60 and index.count() == 60 and index.partitions() == [1]
    if isinstance(index, HnswIndex):
        assert index.graph_size(1) == (60 if index.small_partition <= 60 else None)
    assert index.search([1], q, 0) == []
    assert len(index.search([1], q, 1000)) == 60


def test_upsert_replaces_vector_and_person(index: VectorIndex) -> None:
    x = rand(20)
    index.add(3, list(range(20)), [0] * 20, x)
    target = x[5] + 0.01
    index.add(3, [0], [42], target[None, :])
    top = index.search([3], target, 1)[0]
    assert (top.face_id, top.person_id) == (0, 42)
    assert top.distance < 1e-5
    assert index.count(3) == 20
    # duplicates in one call: the last one wins
    w = rand(2, seed=99)
    index.add(3, [7, 7], [1, 2], w)
    top = index.search([3], w[1], 1)[0]
    assert top == Hit(3, 7, 2, top.distance) and top.distance < 1e-5
    assert index.search([3], w[0], 1)[0].face_id != 7 or index.search([3], w[0], 1)[0].distance > 1e-3
    assert index.count(3) == 20


def test_removed_faces_and_persons_never_returned(index: VectorIndex) -> None:
    x = rand(40)
    index.add(1, np.arange(40), np.arange(40) % 4, x)
    index.remove_faces(1, [0, 5, 39, 1000])
    assert index.count(1) == 37
    for q in x:
        assert not {0, 5, 39} & set(fids(index.search([1], q, 40)))
    index.remove_person(1, 2)
    assert index.count(1) == 37 - 10
    for q in x[:10]:
        assert all(h.person_id != 2 for h in index.search([1], q, 40))
    index.remove_faces(7, [1])  # unknown partition: ignored
    index.remove_person(7, 1)


def test_unique_persons_returns_k_distinct_persons(index: VectorIndex) -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal(DIM).astype(np.float32)
    near = q + 0.01 * rng.standard_normal((60, DIM)).astype(np.float32)  # person 1: 60 close faces
    others = q + 1.0 * rng.standard_normal((20, DIM)).astype(np.float32)  # persons 2..21
    index.add(0, np.arange(60), [1] * 60, near)
    index.add(0, np.arange(100, 120), np.arange(2, 22), others)
    hits = index.search([0], q, 5, unique_persons=True)
    assert len(hits) == 5
    assert len({h.person_id for h in hits}) == 5
    assert hits[0].person_id == 1
    expected = [100 + i for i in brute(others, q, 4)]
    assert fids(hits[1:]) == expected
    plain = index.search([0], q, 5)
    assert {h.person_id for h in plain} == {1}
    assert len(index.search([0], q, 50, unique_persons=True)) == 21


def test_groups_filter(index: VectorIndex) -> None:
    x = rand(40, seed=4)
    index.add(0, np.arange(40), np.arange(40) // 10, x)  # persons 0..3, 10 faces each
    index.set_person_groups(0, 1, ["vip"])
    index.set_person_groups(0, 2, ["vip", "staff"])
    index.set_person_groups(0, 3, [])  # empty -> default
    q = rand(1, seed=5)[0]

    def persons(groups: list[str]) -> set[int]:
        return {h.person_id for h in index.search([0], q, 40, groups=groups)}

    assert persons(["vip"]) == {1, 2}
    assert persons(["staff"]) == {2}
    assert persons(["default"]) == {0, 3}
    assert persons(["default", "staff"]) == {0, 2, 3}
    assert persons(["nobody"]) == set()
    assert persons([]) == set()
    hits = index.search([0], q, 3, groups=["vip"])
    member = np.arange(10, 30)
    assert fids(hits) == [int(member[i]) for i in brute(x[member], q, 3)]
    index.set_person_groups(0, 1, ["staff"])
    assert persons(["vip"]) == {2}
    assert persons(["staff"]) == {1, 2}
    index.set_person_groups(0, 2, ["default"])
    assert persons(["default"]) == {0, 2, 3}
    assert len(index.search([0], q, 2, groups=["default"], unique_persons=True)) == 2
    index.remove_person(0, 1)
    assert persons(["staff"]) == set()


def test_groups_at_the_service_limits(index: VectorIndex) -> None:
    """A person in GROUPS_MAX groups of 100-character names (4-byte characters, quotes) is found
    by any one of them, and a search filters on up to GROUPS_MAX names."""
    from facesearch.domain import GROUPS_MAX

    names = [f'{i:03d}"\\' + "\U0001f600" * 95 for i in range(GROUPS_MAX)]
    index.add(0, [1, 2], [1, 2], rand(2))
    index.set_person_groups(0, 1, names)
    q = rand(1, seed=3)[0]
    assert {h.person_id for h in index.search([0], q, 5, groups=[names[-1]])} == {1}
    assert {h.person_id for h in index.search([0], q, 5, groups=[*names[:99], "default"])} == {1, 2}


def test_groups_for_person_without_faces_yet(index: VectorIndex) -> None:
    index.set_person_groups(5, 9, ["vip"])
    index.add(5, [1, 2], [9, 10], rand(2))
    assert {h.person_id for h in index.search([5], rand(1)[0], 5, groups=["vip"])} == {9}


def test_partitions_are_merged_and_reported(index: VectorIndex) -> None:
    x = rand(30, seed=6)
    index.add(1, np.arange(0, 15), np.arange(0, 15), x[:15])
    index.add(2, np.arange(15, 30), np.arange(15, 30), x[15:])
    q = rand(1, seed=7)[0]
    hits = index.search([1, 2, 99], q, 10)
    assert fids(hits) == brute(x, q, 10)
    assert all(h.partition == (1 if h.face_id < 15 else 2) for h in hits)
    assert all(h.partition == 2 for h in index.search([2], q, 10))
    assert index.search([99], q, 10) == []
    assert index.count() == 30 and index.partitions() == [1, 2]
    index.drop_partition(1)
    assert index.partitions() == [2] and index.count() == 15
    assert all(h.partition == 2 for h in index.search([1, 2], q, 10))


def test_max_distance(index: VectorIndex) -> None:
    x = rand(50, seed=8)
    index.add(0, np.arange(50), np.arange(50), x)
    q = x[0] + 0.001
    dist = np.linalg.norm(x - q, axis=1)
    limit = float(np.sort(dist)[4]) + 1e-4
    hits = index.search([0], q, 20, max_distance=limit)
    assert len(hits) == 5 and all(h.distance <= limit for h in hits)
    assert index.search([0], q, 20, max_distance=0.0) == []
    assert len(index.search([0], q, 20, max_distance=limit, unique_persons=True)) == 5


def test_dimension_mismatch(index: VectorIndex) -> None:
    index.add(0, [1], [1], rand(1))
    with pytest.raises(ValueError):
        index.add(0, [2], [1], rand(1, dim=DIM + 1))
    with pytest.raises(ValueError):
        index.search([0], rand(1, dim=DIM + 1)[0], 1)
    with pytest.raises(ValueError):
        index.add(0, [2, 3], [1], rand(2))
    with pytest.raises(ValueError):
        index.add(0, [2], [1], np.full((1, DIM), np.nan, dtype=np.float32))
    index.add(1, [2], [1], rand(1, dim=8))  # another partition may differ
    assert index.count() == 2


def test_search_batch_equals_search(index: VectorIndex) -> None:
    x = rand(120, seed=10)
    index.add(0, np.arange(120), np.arange(120) // 4, x)
    index.add(1, np.arange(200, 230), np.arange(200, 230), rand(30, seed=11))
    index.set_person_groups(0, 3, ["vip"])
    qs = rand(25, seed=12)
    for opts in (
        {},
        {"unique_persons": True},
        {"groups": ["vip", "default"]},
        {"max_distance": 4.0},
        {"exact": True},
    ):
        batch = index.search_batch([0, 1], qs, 6, **opts)
        single = [index.search([0, 1], q, 6, **opts) for q in qs]
        assert [fids(b) for b in batch] == [fids(s) for s in single]
        for b, s in zip(batch, single, strict=True):
            np.testing.assert_allclose([h.distance for h in b], [h.distance for h in s], rtol=1e-5)
    assert index.search_batch([0], np.zeros((0, DIM), np.float32), 3) == []


def test_save_load_round_trip(kind: str, make: MakeIndex, tmp_path: Path) -> None:
    index = make()
    x = rand(80, seed=13)
    index.add(0, np.arange(80), np.arange(80) // 2, x)
    index.add(4, [500, 501], [9, 9], rand(2, seed=14))
    index.remove_faces(0, [3, 4])
    index.set_person_groups(0, 7, ["vip", "staff"])
    index.applied_seq = 1234
    qs = rand(10, seed=15)
    before = index.search_batch([0, 4], qs, 5)
    before_vip = index.search_batch([0], qs, 5, groups=["vip"])
    index.save(tmp_path / "snap")
    loaded = make() if kind == "milvus" else open_index(URLS[kind], tmp_path / "snap")
    assert type(loaded) is type(index)
    if kind != "milvus":  # Milvus's cursor is kept in the database, by the follower
        assert loaded.applied_seq == 1234
    assert loaded.count(0) == 78 and loaded.partitions() == [0, 4]
    assert loaded.search_batch([0, 4], qs, 5) == before
    assert loaded.search_batch([0], qs, 5, groups=["vip"]) == before_vip
    # the loaded index keeps working, and a second save replaces the first generation
    loaded.add(0, [3], [1], x[3:4])
    loaded.remove_faces(0, [10])
    loaded.applied_seq = 1300
    loaded.save(tmp_path / "snap")
    again = make() if kind == "milvus" else open_index(URLS[kind], tmp_path / "snap")
    assert again.count(0) == 78 and (kind == "milvus" or again.applied_seq == 1300)
    assert again.search([0], x[3], 1)[0].face_id == 3
    if kind != "milvus":
        assert len([p for p in (tmp_path / "snap").iterdir() if p.name.startswith("gen-")]) == 1


def test_snapshot_moves_between_backends(tmp_path: Path) -> None:
    x = rand(50, seed=16)
    exact = ExactIndex()
    exact.add(0, np.arange(50), np.arange(50), x)
    exact.applied_seq = 7
    exact.save(tmp_path / "a")
    hnsw = open_index("hnsw://?small_partition=8", tmp_path / "a")
    assert isinstance(hnsw, HnswIndex) and hnsw.graph_size(0) == 50 and hnsw.applied_seq == 7
    hnsw.save(tmp_path / "b")
    back = open_index("exact://", tmp_path / "b")
    q = rand(1, seed=17)[0]
    assert fids(back.search([0], q, 5)) == fids(exact.search([0], q, 5)) == fids(hnsw.search([0], q, 5))


def _corrupt_current(snap: Path) -> None:
    (snap / "CURRENT").write_text("{not json")


def _corrupt_vectors(snap: Path) -> None:
    gen = next(p for p in snap.iterdir() if p.name.startswith("gen-"))
    (gen / "p0.vectors.npy").write_bytes(b"garbage")


def _corrupt_graph(snap: Path) -> None:
    gen = next(p for p in snap.iterdir() if p.name.startswith("gen-"))
    graph = gen / "p0.hnsw"
    if graph.exists():
        graph.write_bytes(graph.read_bytes()[:100])
    else:
        (gen / "meta.json").write_text('{"format": 1}')


def _flip_one_byte(snap: Path) -> None:
    gen = next(p for p in snap.iterdir() if p.name.startswith("gen-"))
    target = gen / "p0.hnsw" if (gen / "p0.hnsw").exists() else gen / "p0.vectors.npy"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


def _truncate_ids(snap: Path) -> None:
    gen = next(p for p in snap.iterdir() if p.name.startswith("gen-"))
    np.save(gen / "p0.face_ids.npy", np.arange(3, dtype=np.int64))


@pytest.mark.parametrize(
    "damage", [_corrupt_current, _corrupt_vectors, _corrupt_graph, _flip_one_byte, _truncate_ids]
)
def test_corrupt_snapshot_starts_empty(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    no_snapshots(kind)
    index = _make(kind)
    index.add(0, np.arange(30), np.arange(30), rand(30))
    index.applied_seq = 99
    index.save(tmp_path / "snap")
    damage(tmp_path / "snap")
    with caplog.at_level(logging.WARNING):
        loaded = open_index(URLS[kind], tmp_path / "snap")
    assert loaded.applied_seq == 0 and loaded.count() == 0
    assert "unreadable" in caplog.text


def test_crash_during_save_keeps_previous_snapshot(kind: str, tmp_path: Path) -> None:
    no_snapshots(kind)
    index = _make(kind)
    index.add(0, np.arange(30), np.arange(30), rand(30))
    index.applied_seq = 5
    index.save(tmp_path / "snap")
    # a half-written newer generation and a stray pointer temp file, as a crash would leave them
    (tmp_path / "snap" / "gen-6-deadbeef").mkdir()
    (tmp_path / "snap" / "gen-6-deadbeef" / "p0.vectors.npy").write_bytes(b"partial")
    (tmp_path / "snap" / "CURRENT.1234.tmp").write_text("{")
    loaded = open_index(URLS[kind], tmp_path / "snap")
    assert loaded.applied_seq == 5 and loaded.count(0) == 30


def test_open_index_urls(tmp_path: Path) -> None:
    assert isinstance(open_index("memory://", None), HnswIndex)
    assert isinstance(open_index("hnsw://", tmp_path / "missing"), HnswIndex)
    assert isinstance(open_index("exact://", None), ExactIndex)
    custom = open_index("hnsw://?m=8&ef_search=64&small_partition=10", None)
    assert isinstance(custom, HnswIndex) and (custom.m, custom.ef_search, custom.small_partition) == (
        8,
        64,
        10,
    )
    empty = open_index("exact://", tmp_path)
    assert empty.applied_seq == 0 and empty.count() == 0
    bad_urls = ("milvus://127.0.0.1:1?nope=1", "milvus://u:p@127.0.0.1:1", "bogus", "hnsw://?nope=1")
    for bad in (*bad_urls, "hnsw://?m=x", "exact://?m=3"):
        with pytest.raises(ValueError):
            open_index(bad, None)
    assert isinstance(open_index("exact://", None), VectorIndex)


def test_memory_grows_with_data(index: VectorIndex) -> None:
    empty = index.memory_bytes()
    index.add(0, np.arange(500), np.arange(500), rand(500, dim=64))
    assert index.memory_bytes() >= empty + 500 * 64 * 4


def _unit(v: np.ndarray) -> FloatArray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_person_templates_score_a_person_by_the_mean_of_their_faces(make: MakeIndex, tmp_path: Path) -> None:
    index = make()
    rng = np.random.default_rng(3)
    others = _unit(rng.standard_normal((40, DIM)))
    index.add(1, np.arange(100, 140), np.arange(100, 140), others)  # 40 one-face persons
    centre = _unit(rng.standard_normal(DIM))
    a, b = (
        _unit(centre + 0.6 * _unit(rng.standard_normal(DIM))),
        _unit(centre - 0.6 * _unit(rng.standard_normal(DIM))),
    )
    index.add(1, [1, 2], [7, 7], np.stack([a, b]))
    template = _unit(a + b)
    q = _unit(template + 0.05 * rng.standard_normal(DIM))
    by_face = min(float(np.linalg.norm(a - q)), float(np.linalg.norm(b - q)))
    by_template = float(np.linalg.norm(template - q))
    assert by_template < by_face
    best = index.search([1], q, 3, unique_persons=True)[0]
    assert best.person_id == 7 and best.distance == pytest.approx(by_face, rel=1e-5)
    hit = index.search([1], q, 3, unique_persons=True, templates=True)[0]
    assert hit.person_id == 7 and hit.face_id in (1, 2)
    assert hit.distance == pytest.approx(by_template, rel=1e-5)
    # A cut-off between the two distances: the template passes it, the best face does not.
    cut = (by_face + by_template) / 2
    assert [h.person_id for h in index.search([1], q, 3, unique_persons=True, max_distance=cut)] == []
    passed = index.search([1], q, 3, unique_persons=True, max_distance=cut, templates=True)
    assert [h.person_id for h in passed] == [7]
    # One-face persons are scored by their face, so their distances are unchanged.
    p = others[5]
    with_t = index.search([1], p, 1, unique_persons=True, templates=True)[0]
    assert with_t.person_id == 105 and with_t.distance == pytest.approx(0.0, abs=1e-3)
    # Kept current: after a snapshot round trip, and when a face is removed (one face left).
    index.save(tmp_path / "snap")
    loaded = make() if isinstance(index, MilvusIndex) else type(index).load(tmp_path / "snap")  # type: ignore[attr-defined]
    again = loaded.search([1], q, 1, unique_persons=True, templates=True)[0]
    assert again.distance == pytest.approx(by_template, rel=1e-5)
    index.remove_faces(1, [2])
    left = index.search([1], q, 1, unique_persons=True, templates=True)[0]
    assert left.face_id == 1 and left.distance == pytest.approx(float(np.linalg.norm(a - q)), rel=1e-5)
    index.add(1, [3], [7], b[None, :])  # a face added back: the template again
    back = index.search([1], q, 1, unique_persons=True, templates=True)[0]
    assert back.distance == pytest.approx(by_template, rel=1e-5)
    index.remove_person(1, 7)
    assert all(h.person_id != 7 for h in index.search([1], q, 5, unique_persons=True, templates=True))
