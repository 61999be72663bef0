"""Fitting a calibration table (``fit_calibration``) from impostor and genuine distances.

The table itself, what a model pack carries and the service reads, lives in
``facesearch.pipeline.calibration.table`` (its docstring describes the model); it is re-exported
here for the evaluation tools.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from facesearch.pipeline.calibration.table import (
    SIMILARITY_DECADES,
    CalibrationTable,
    FloatArray,
    fmr_for_similarity,
    similarity_for_fmr,
)

__all__ = [
    "SIMILARITY_DECADES",
    "CalibrationTable",
    "fit_calibration",
    "fmr_for_similarity",
    "similarity_for_fmr",
]


def _ecdf_knots(sorted_x: FloatArray, probs: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Distinct distances at the given quantile levels and the exact empirical CDF there."""
    n = sorted_x.size
    idx = np.clip(np.ceil(probs * n).astype(np.int64) - 1, 0, n - 1)
    knots = np.unique(sorted_x[idx])
    cdf = np.searchsorted(sorted_x, knots, side="right") / n
    return knots, np.asarray(cdf, dtype=np.float64)


def _clean(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return np.sort(arr[np.isfinite(arr)])


def fit_calibration(
    impostor_distances: npt.ArrayLike,
    genuine_distances: npt.ArrayLike,
    *,
    tail_fraction: float = 0.01,
    min_tail_points: int = 10,
    knots_per_decade: int = 20,
) -> CalibrationTable:
    """Fit the distance -> FMR table (see the module docstring). Non-finite distances are dropped."""
    imp = _clean(impostor_distances, "impostor_distances")
    gen = _clean(genuine_distances, "genuine_distances")
    n = imp.size
    if n < 10 * min_tail_points:
        raise ValueError(f"need at least {10 * min_tail_points} finite impostor distances, got {n}")
    if gen.size == 0:
        raise ValueError("need at least one finite genuine distance")
    if not 0.0 < tail_fraction < 1.0:
        raise ValueError("tail_fraction must be in (0, 1)")

    m = min(n, max(math.ceil(tail_fraction * n), min_tail_points))
    tail_x = imp[:m]
    tail_y = np.log(np.searchsorted(imp, tail_x, side="right") / n)
    dx = tail_x - tail_x.mean()
    var = float(np.dot(dx, dx))
    slope = float(np.dot(dx, tail_y - tail_y.mean()) / var) if var > 0 else 0.0
    if not (math.isfinite(slope) and slope > 0.0):
        raise ValueError("impostor distances are too degenerate to fit a tail (lowest ones all equal)")

    p0 = min_tail_points / n
    n_levels = max(2, math.ceil(-math.log10(p0) * knots_per_decade) + 1)
    probs = np.geomspace(p0, 1.0, n_levels)
    knots, fmr = _ecdf_knots(imp, probs)

    gen_knots, gen_cdf = _ecdf_knots(gen, np.linspace(0.0, 1.0, 201)[1:])
    return CalibrationTable(
        distance_knots=knots,
        fmr_knots=fmr,
        tail_slope=slope,
        genuine_knots=gen_knots,
        genuine_cdf=gen_cdf,
        n_impostor=int(n),
        n_genuine=int(gen.size),
    )
