"""The HNSW graph on principal components (hnsw.Projection), with the exact re-rank on full vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesearch.index import ExactIndex, HnswIndex, open_index
from facesearch.index.hnsw import PROJECT_STEP, Projection
from synthetic import face_like

DIM = 128
LATENT = 40  # the data's true dimensions: 48 projected axes (a multiple of 16) keep them all


def _low_rank(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """128-d vectors that live near a 40-d subspace, as dlib descriptors mostly do; and probes."""
    data = face_like(n, dim=LATENT, per_identity=5, seed=seed)
    basis = np.linalg.qr(np.random.default_rng(99).standard_normal((DIM, LATENT)))[0].T  # (40, 128)
    noise = np.random.default_rng(seed + 1).standard_normal((n, DIM)) * 0.002
    vectors = (data.vectors @ basis + noise).astype(np.float32)
    probes = np.vstack([data.probes(60, seed=seed + 2), data.probes(20, seed=seed + 3, known=False)])
    return vectors, data.labels, (probes @ basis).astype(np.float32)


@pytest.fixture(scope="module")
def built() -> tuple[ExactIndex, HnswIndex, np.ndarray, np.ndarray, np.ndarray]:
    vectors, labels, probes = _low_rank(6_000, seed=0)
    exact, hnsw = ExactIndex(), HnswIndex(small_partition=1_000)
    ids = np.arange(len(vectors))
    exact.add(0, ids, labels, vectors)
    hnsw.add(0, ids, labels, vectors)
    return exact, hnsw, vectors, labels, probes


def test_fit_keeps_few_axes_only_when_they_hold_the_variance() -> None:
    vectors, _, _ = _low_rank(3_000, seed=4)
    projection = Projection.fit(vectors)
    assert projection is not None and projection.dim == 48
    assert projection.dim % PROJECT_STEP == 0 and projection.axes.shape == (DIM, 48)
    # isotropic data needs nearly every axis: no projection
    assert Projection.fit(face_like(3_000, dim=DIM, seed=5).vectors) is None
    # too few rows to estimate 128x128 covariances, or too few dimensions to gain anything
    assert Projection.fit(vectors[:100]) is None
    assert Projection.fit(np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)) is None


def test_projected_graph_finds_what_the_exact_scan_finds(built: tuple) -> None:
    exact, hnsw, _, _, probes = built
    graph = hnsw._graphs[0]
    assert graph.projection is not None and int(graph.indexes[0].dim) == 48
    truth = exact.search_batch([0], probes, 10)
    fast = hnsw.search_batch([0], probes, 10)
    hits = sum(len({h.face_id for h in t} & {h.face_id for h in f}) for t, f in zip(truth, fast, strict=True))
    assert hits / (10 * len(probes)) >= 0.99
    # distances are the full vectors' exact ones, not the projected ones
    for t, f in zip(truth[:10], fast[:10], strict=True):
        same = {h.face_id: h.distance for h in t}
        for hit in f:
            if hit.face_id in same:
                assert hit.distance == pytest.approx(same[hit.face_id], abs=1e-6)
    for q in probes[:10]:
        assert (
            hnsw.search([0], q, 1, unique_persons=True)[0] == exact.search([0], q, 1, unique_persons=True)[0]
        )


def test_faces_added_after_the_build_are_projected_and_found(built: tuple) -> None:
    exact, hnsw, vectors, labels, _ = built
    axes_before = hnsw._graphs[0].projection.axes.copy()
    new = vectors[:50] + np.float32(0.001)
    new_ids = np.arange(100_000, 100_050)
    hnsw.add(0, new_ids, labels[:50], new)
    exact.add(0, new_ids, labels[:50], new)
    assert np.array_equal(hnsw._graphs[0].projection.axes, axes_before)
    for i in range(0, 50, 7):
        assert hnsw.search([0], new[i], 1)[0].face_id in (int(new_ids[i]), i)
    hnsw.remove_faces(0, [int(x) for x in new_ids])
    exact.remove_faces(0, [int(x) for x in new_ids])


def test_snapshot_keeps_the_projection(built: tuple, tmp_path: Path) -> None:
    _, hnsw, _, _, probes = built
    hnsw.save(tmp_path)
    loaded = HnswIndex.load(tmp_path, small_partition=1_000)
    before, after = hnsw._graphs[0].projection, loaded._graphs[0].projection
    assert (
        after is not None
        and np.array_equal(after.axes, before.axes)
        and np.array_equal(after.mean, before.mean)
    )
    assert loaded.search_batch([0], probes, 10) == hnsw.search_batch([0], probes, 10)


def test_project_0_builds_on_full_vectors_and_a_saved_graph_keeps_its_own(tmp_path: Path) -> None:
    vectors, labels, probes = _low_rank(3_000, seed=7)
    plain = open_index("memory://?small_partition=1000&project=0")
    assert isinstance(plain, HnswIndex)
    plain.add(0, np.arange(len(vectors)), labels, vectors)
    graph = plain._graphs[0]
    assert graph.projection is None and int(graph.indexes[0].dim) == DIM
    plain.save(tmp_path)
    # loading with projections on keeps the saved full-vector graph rather than rebuilding it
    loaded = HnswIndex.load(tmp_path, small_partition=1_000, project=1)
    assert loaded._graphs[0].projection is None and int(loaded._graphs[0].indexes[0].dim) == DIM
    assert loaded.search_batch([0], probes, 5) == plain.search_batch([0], probes, 5)
    with pytest.raises(ValueError, match="project"):
        HnswIndex(project=2)
