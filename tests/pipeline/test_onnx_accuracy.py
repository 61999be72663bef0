"""LFW development pairs: the onnx, fusion and retina packs, and fusion against dlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_helpers import (
    accuracy_at,
    best_accuracy,
    lfw_pairs,
    need_models,
    pair_distances,
)

from embedworker import EmbeddingCache
from facesearch.pipeline import build_pack

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]


def _pack_figures(
    name: str, faces_dir: Path, vecs: dict[Path, np.ndarray | None]
) -> tuple[float, float, float, float]:
    """(accuracy at the pack's fixed threshold, its distance, best accuracy, best distance)."""
    pairs = lfw_pairs(faces_dir)
    distances, same = pair_distances(pairs, vecs)
    pack = build_pack(name)
    fixed = pack.distance_for_similarity(pack.default_threshold)
    best, at = best_accuracy(distances, same)
    return accuracy_at(distances, same, fixed), fixed, best, at


def _vectors(faces_dir: Path, pack: str) -> dict[Path, np.ndarray | None]:
    need_models()
    pairs = lfw_pairs(faces_dir)
    assert len(pairs) == 1000
    photos = sorted({p for a, b, _ in pairs for p in (a, b)})
    vecs = EmbeddingCache(faces_dir, pack).get_many(photos)
    misses = sum(v is None for v in vecs.values())
    print(f"{pack}: {misses} of {len(photos)} photos without a face")
    return vecs


@pytest.fixture(scope="module")
def onnx_vectors(faces_dir: Path) -> dict[Path, np.ndarray | None]:
    return _vectors(faces_dir, "onnx")


@pytest.fixture(scope="module")
def fusion_vectors(faces_dir: Path) -> dict[Path, np.ndarray | None]:
    return _vectors(faces_dir, "fusion")


def test_onnx_lfw_dev_pairs(faces_dir: Path, onnx_vectors: dict[Path, np.ndarray | None]) -> None:
    fixed, at, best, best_at = _pack_figures("onnx", faces_dir, onnx_vectors)
    print(f"onnx LFW dev pairs: {fixed:.2%} at its fixed distance {at:.3f}; best {best:.2%} at {best_at:.3f}")
    assert fixed >= 0.98 and best >= 0.985


def test_fusion_beats_dlib_by_half_a_point(
    faces_dir: Path, fusion_vectors: dict[Path, np.ndarray | None], embedding_cache: object
) -> None:
    assert isinstance(embedding_cache, EmbeddingCache)
    dlib_vectors = embedding_cache.get_many(sorted(fusion_vectors))
    f_fixed, f_at, f_best, f_best_at = _pack_figures("fusion", faces_dir, fusion_vectors)
    d_fixed, d_at, d_best, d_best_at = _pack_figures("dlib", faces_dir, dlib_vectors)
    print(
        f"LFW dev pairs, fixed thresholds: fusion {f_fixed:.2%} (distance {f_at:.3f}), "
        f"dlib {d_fixed:.2%} (distance {d_at:.3f}); best thresholds: fusion {f_best:.2%} "
        f"({f_best_at:.3f}), dlib {d_best:.2%} ({d_best_at:.3f})"
    )
    # Counted in pairs (1,000): 0.5 point is 5 pairs, at the thresholds the service uses (each
    # pack's default, from its calibration table, fitted on half the LFW dev identities). At the
    # best threshold for each (chosen on these same pairs) the margin measured 0.4 point once the
    # dlib pack gained the ONNX fallback detector (98.8% -> 98.9%): printed, not asserted.
    assert round(f_fixed * 1000) >= round(d_fixed * 1000) + 5
    assert f_best > d_best


def test_retina_lfw_dev_pairs_and_open_set(faces_dir: Path) -> None:
    """The default pack: pairs at its default threshold and FNIR at FPIR 1% on the dev
    identification protocol, at floors a little under what was measured (99.40% / 99.50% best;
    rank-1 98.35%, FNIR 4.61%; onnx 99.10% and 5.86%)."""
    from embedworker import need_pack, photo_embedder
    from facesearch.cli.evaluate import run_identify

    need_pack("retina")
    vecs = _vectors(faces_dir, "retina")
    fixed, at, best, best_at = _pack_figures("retina", faces_dir, vecs)
    r = run_identify(faces_dir / "lfw", photo_embedder("retina"))
    print(
        f"retina LFW dev pairs: {fixed:.2%} at its default distance {at:.3f}; best {best:.2%} at "
        f"{best_at:.3f}; identification rank-1 {r['rank1']:.2%}, FNIR at FPIR 1% {r['fnir_at_fpir_1e2']:.2%}"
    )
    assert fixed >= 0.992 and best >= 0.993
    assert r["rank1"] >= 0.978 and r["fnir_at_fpir_1e2"] <= 0.052
