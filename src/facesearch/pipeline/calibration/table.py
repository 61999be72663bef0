"""The calibration table a model pack carries: distance -> false-match rate, and the similarity.

``facesearch.eval.calibration.fit_calibration`` turns impostor distances (pairs of different
people) into a monotone table of knots ``(distance, FMR)``: FMR(d) is the empirical impostor
CDF, the share of impostor pairs with distance <= d, read at quantile knots
(``knots_per_decade`` per decade of FMR, down to the ``min_tail_points``-th smallest impostor).
Between knots log(FMR) is interpolated linearly in distance. Below the first knot a log-linear
tail takes over: ``ln FMR`` falls with the slope fitted by least squares on the lowest
``tail_fraction`` (1 %) of impostor distances, anchored at the first knot, so FMR keeps falling
smoothly below 1/n. For light (Gaussian-like) tails this extrapolation over-states the FMR, i.e.
errs on the safe side. At and above the largest impostor distance FMR is 1.

Similarity: ``s = clip(-log10(FMR) / 6, 0, 1)``. So s = 0.5 means one false match per 1,000
comparisons (FMR 1e-3); 0.333 is 1e-2, 0.667 is 1e-4 and s = 1.0 is FMR <= 1e-6. ``s = 0`` means
FMR = 1 (every impostor is that close).

Open-set search against a gallery of N enrolled faces: the chance that a stranger matches anyone
is ``1 - (1 - FMR)^N`` (comparisons taken as independent), so ``threshold_for_gallery`` asks for a
per-comparison ``FMR = 1 - (1 - max_fpr)^(1/N)`` (about ``max_fpr / N``) and returns its similarity.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SIMILARITY_DECADES = 6.0
"""Decades of FMR spanned by the similarity scale: s = 1 at FMR 10**-6."""

_FORMAT = "facesearch-calibration"
_VERSION = 1


def similarity_for_fmr(fmr: float) -> float:
    """``clip(-log10(fmr) / 6, 0, 1)``."""
    if not fmr > 0.0:
        return 1.0
    return float(min(1.0, max(0.0, -math.log10(fmr) / SIMILARITY_DECADES)))


def fmr_for_similarity(similarity: float) -> float:
    """Inverse of the similarity mapping on [0, 1]: ``10 ** (-6 s)`` (s = 1 means FMR <= 1e-6)."""
    if not 0.0 <= similarity <= 1.0:
        raise ValueError(f"similarity must be in [0, 1], got {similarity}")
    return float(10.0 ** (-SIMILARITY_DECADES * similarity))


def _increasing(arr: FloatArray, name: str) -> None:
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a non-empty 1-D array of finite numbers")
    if arr.size > 1 and not (np.diff(arr) > 0).all():
        raise ValueError(f"{name} must be strictly increasing")


@dataclass(frozen=True, eq=False)
class CalibrationTable:
    """Monotone distance -> FMR table; see the module docstring for the model."""

    distance_knots: FloatArray  # strictly increasing
    fmr_knots: FloatArray  # FMR at each knot, strictly increasing, last one 1.0
    tail_slope: float  # d ln(FMR) / d distance below the first knot (> 0)
    genuine_knots: FloatArray  # knots of the genuine CDF, strictly increasing
    genuine_cdf: FloatArray  # share of genuine pairs with distance <= knot
    n_impostor: int
    n_genuine: int
    # Provenance and choices stored with the table (data set, split, default threshold, checks).
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("distance_knots", "fmr_knots", "genuine_knots", "genuine_cdf"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        _increasing(self.distance_knots, "distance_knots")
        _increasing(self.fmr_knots, "fmr_knots")
        _increasing(self.genuine_knots, "genuine_knots")
        if (
            self.fmr_knots.shape != self.distance_knots.shape
            or self.genuine_cdf.shape != self.genuine_knots.shape
        ):
            raise ValueError("knot arrays differ in length")
        if self.fmr_knots[0] <= 0.0 or self.fmr_knots[-1] != 1.0:
            raise ValueError("fmr_knots must lie in (0, 1] and end at 1.0")
        if not (math.isfinite(self.tail_slope) and self.tail_slope > 0.0):
            raise ValueError("tail_slope must be positive")
        if (np.diff(self.genuine_cdf) < 0).any() or self.genuine_cdf[0] < 0 or self.genuine_cdf[-1] > 1:
            raise ValueError("genuine_cdf must be non-decreasing within [0, 1]")

    # -- distance <-> FMR -------------------------------------------------------------------
    def log_fmr(self, distances: npt.ArrayLike) -> FloatArray:
        """Natural log of FMR at each distance (vectorised; -inf never occurs for finite input)."""
        d = np.asarray(distances, dtype=np.float64)
        lf = np.log(self.fmr_knots)
        body = np.interp(d, self.distance_knots, lf)
        tail = lf[0] + self.tail_slope * (d - self.distance_knots[0])
        return np.asarray(np.where(d < self.distance_knots[0], tail, body), dtype=np.float64)

    def fmr(self, distance: float) -> float:
        """False-match rate at ``distance``: monotone non-decreasing, 1.0 at and past the last knot."""
        return float(math.exp(float(self.log_fmr(distance))))

    def distance_for_fmr(self, fmr: float) -> float:
        """The distance whose FMR is ``fmr`` (inverse of ``fmr``; the last knot for fmr >= 1)."""
        if not fmr > 0.0:
            raise ValueError(f"fmr must be positive, got {fmr}")
        if fmr >= 1.0:
            return float(self.distance_knots[-1])
        lf = math.log(fmr)
        lf_knots = np.log(self.fmr_knots)
        if lf < lf_knots[0]:
            return float(self.distance_knots[0] + (lf - lf_knots[0]) / self.tail_slope)
        return float(np.interp(lf, lf_knots, self.distance_knots))

    # -- similarity --------------------------------------------------------------------------
    def similarity(self, distance: float) -> float:
        """``clip(-log10(FMR(distance)) / 6, 0, 1)``: 0.5 means FMR 1e-3."""
        return float(self.similarities(np.asarray([distance]))[0])

    def similarities(self, distances: npt.ArrayLike) -> FloatArray:
        """Vectorised ``similarity``."""
        s = -self.log_fmr(distances) / (math.log(10.0) * SIMILARITY_DECADES)
        return np.asarray(np.clip(s, 0.0, 1.0), dtype=np.float64)

    def distance_for_similarity(self, similarity: float) -> float:
        """The distance at which the similarity equals ``similarity``."""
        return self.distance_for_fmr(fmr_for_similarity(similarity))

    @staticmethod
    def fmr_for_similarity(similarity: float) -> float:
        """Per-comparison FMR a similarity stands for: ``10 ** (-6 s)``."""
        return fmr_for_similarity(similarity)

    @staticmethod
    def fmr_for_gallery(max_fpr: float, gallery_size: int) -> float:
        """Per-comparison FMR keeping a stranger's chance of matching anyone among ``gallery_size``
        faces at ``max_fpr``: 1 - (1 - max_fpr)^(1/N), about max_fpr / N."""
        if not 0.0 < max_fpr < 1.0:
            raise ValueError(f"max_fpr must be in (0, 1), got {max_fpr}")
        if gallery_size < 1:
            raise ValueError(f"gallery_size must be >= 1, got {gallery_size}")
        return -math.expm1(math.log1p(-max_fpr) / gallery_size)

    @staticmethod
    def threshold_for_gallery(max_fpr: float, gallery_size: int) -> float:
        """Similarity threshold keeping a stranger's chance of matching anyone in a gallery of
        ``gallery_size`` faces at ``max_fpr``: per-comparison FMR = 1 - (1 - max_fpr)^(1/N).
        Saturates at 1.0 when that FMR is below 1e-6; ``distance_for_gallery`` does not."""
        return similarity_for_fmr(CalibrationTable.fmr_for_gallery(max_fpr, gallery_size))

    def distance_for_gallery(self, max_fpr: float, gallery_size: int) -> float:
        """The distance threshold for ``threshold_for_gallery``, exact even past similarity 1.0."""
        return self.distance_for_fmr(self.fmr_for_gallery(max_fpr, gallery_size))

    # -- genuine side ------------------------------------------------------------------------
    def fnmr(self, distance: float) -> float:
        """Share of genuine (same-person) pairs farther than ``distance`` (linear interpolation)."""
        cdf = np.interp(distance, self.genuine_knots, self.genuine_cdf, left=0.0, right=1.0)
        return float(1.0 - cdf)

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "similarity": f"clip(-log10(FMR) / {SIMILARITY_DECADES:g}, 0, 1)",
            "n_impostor": self.n_impostor,
            "n_genuine": self.n_genuine,
            "tail_slope": self.tail_slope,
            "distance_knots": self.distance_knots.tolist(),
            "fmr_knots": self.fmr_knots.tolist(),
            "genuine_knots": self.genuine_knots.tolist(),
            "genuine_cdf": self.genuine_cdf.tolist(),
            "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationTable:
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(f"not a {_FORMAT} v{_VERSION} document")
        try:
            return cls(
                distance_knots=np.asarray(data["distance_knots"], dtype=np.float64),
                fmr_knots=np.asarray(data["fmr_knots"], dtype=np.float64),
                tail_slope=float(data["tail_slope"]),
                genuine_knots=np.asarray(data["genuine_knots"], dtype=np.float64),
                genuine_cdf=np.asarray(data["genuine_cdf"], dtype=np.float64),
                n_impostor=int(data["n_impostor"]),
                n_genuine=int(data["n_genuine"]),
                meta=dict(data.get("meta") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed calibration document: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str) -> CalibrationTable:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("calibration JSON must be an object")
        return cls.from_dict(data)
