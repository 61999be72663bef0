"""Synthetic face-descriptor-like vectors for tests and benchmarks (no real faces involved).

`kind="isotropic"` (the default): each identity has a random unit centre; each sample adds
isotropic Gaussian noise of total norm about `spread`, so two samples of one identity are about
`spread * sqrt(2)` apart (0.42 by default, like same-person dlib descriptors) and samples of
different identities about 1.45. Random centres in 128-d are close to the hardest case for HNSW:
every stranger is nearly equidistant, which makes the neighbours after the first identity hard
to rank.

`kind="dlib"`: calibrated on 2,500 dlib ResNet descriptors of 1,487 LFW people (computed once for
this module): a common mean of norm 1.3, between-identity variance 0.28 spread over few
directions (eigenvalues ~ 1/(i+2), participation ratio ~31 as measured) and within-identity
variance 0.09 (~ 1/(i+5), ratio ~54 against 59 measured). Same-person distances come out ~0.42
and different-person ~0.85, as measured (0.43 and 0.83 medians).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facesearch.index.base import FloatArray, IdArray


@dataclass(frozen=True)
class FaceLike:
    """A synthetic gallery: vectors[i] is a sample of identity labels[i]."""

    vectors: FloatArray
    labels: IdArray
    centres: FloatArray
    spread: float
    kind: str = "isotropic"
    seed: int = 0

    def probes(self, n: int, seed: int = 1, known: bool = True) -> FloatArray:
        """New samples of enrolled identities (known) or of fresh identities (unknown)."""
        rng = np.random.default_rng(seed)
        dim = self.centres.shape[1]
        gen = _Generator(self.kind, dim, self.spread, self.seed)
        if known:
            centres = self.centres[rng.integers(0, len(self.centres), n)]
        else:
            centres = gen.centres(rng, n)
        return np.ascontiguousarray(centres + gen.noise(rng, n), dtype=np.float32)


def _unit(x: np.ndarray) -> FloatArray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


class _Generator:
    """Draws identity centres and per-sample noise for one kind of data."""

    def __init__(self, kind: str, dim: int, spread: float, seed: int) -> None:
        if kind not in ("isotropic", "dlib"):
            raise ValueError(f"unknown kind {kind!r}")
        self.kind, self.dim, self.spread = kind, dim, spread
        basis = np.random.default_rng([seed, 7])  # fixed per data set, shared with its probes
        self.mean = _unit(basis.standard_normal((1, dim)))[0] * 1.3
        self.q_between = np.linalg.qr(basis.standard_normal((dim, dim)))[0]
        self.q_within = np.linalg.qr(basis.standard_normal((dim, dim)))[0]
        self.sd_between = _spectrum(dim, 2.0, 0.28)
        self.sd_within = _spectrum(dim, 5.0, spread**2)

    def centres(self, rng: np.random.Generator, n: int) -> FloatArray:
        z = rng.standard_normal((n, self.dim))
        if self.kind == "isotropic":
            return _unit(z)
        return np.asarray(self.mean + (z * self.sd_between) @ self.q_between.T, dtype=np.float32)

    def noise(self, rng: np.random.Generator, n: int) -> FloatArray:
        z = rng.standard_normal((n, self.dim))
        if self.kind == "isotropic":
            return np.asarray(z * (self.spread / np.sqrt(self.dim)), dtype=np.float32)
        return np.asarray((z * self.sd_within) @ self.q_within.T, dtype=np.float32)


def _spectrum(dim: int, offset: float, total_variance: float) -> npt.NDArray[np.float64]:
    """Standard deviations along dim directions with variances ~ 1/(i + offset), summing to total."""
    var = 1.0 / (np.arange(dim) + offset)
    return np.asarray(np.sqrt(var * total_variance / var.sum()), dtype=np.float64)


def face_like(
    n: int, dim: int = 128, per_identity: int = 5, spread: float = 0.3, seed: int = 0, kind: str = "isotropic"
) -> FaceLike:
    """n vectors: n // per_identity identities (at least one), samples interleaved by identity."""
    gen = _Generator(kind, dim, spread, seed)
    rng = np.random.default_rng(seed)
    identities = max(1, n // per_identity)
    centres = gen.centres(rng, identities)
    labels = np.arange(n, dtype=np.int64) % identities
    vectors = np.ascontiguousarray(centres[labels] + gen.noise(rng, n), dtype=np.float32)
    return FaceLike(vectors=vectors, labels=labels, centres=centres, spread=spread, kind=kind, seed=seed)
