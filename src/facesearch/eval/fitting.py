"""Fitting a pack's calibration table on a folder-per-person data set, and checking it held out.

Protocol (``calibrate_identities``; the ``facesearch eval calibrate`` command):

1. Every photo is embedded once (photos without a detected face are left out).
2. Identities are split in two halves by a hash of their name: ``sha256(name)`` even -> the *fit*
   half, odd -> the *held-out* half. The split depends on nothing but the name, so it is the same
   on every run and for every pack, and a person's photos never straddle the halves.
3. Within each half, *every* pair of photos is scored: pairs of the same identity are genuine,
   pairs of different identities impostors (on the LFW dev folder: about 1.7 million impostor and
   12 thousand genuine pairs per half, against the 500 mismatched pairs of ``pairsDevTest.txt``).
4. ``fit_calibration`` builds the distance -> FMR table from the fit half only.
5. The held-out half checks it: at the distance the table says gives FMR 1e-2 (down to 1e-5, the
   smallest rate ~1.7 million held-out pairs can check: about 17 false matches), the share of
   held-out impostor pairs that are that close is the observed FMR.
5b. The tail is corrected on pairs across the halves: a table fitted on one half's identities
   under-states the rate between those identities and new ones in the deep tail (onnx: 1.8x at
   1e-5, measured on pairs across the halves), because a few look-alike identities dominate it.
   The held-out identities are split again by a second hash byte (``stranger_part``): pairs of
   a fit-half photo and a photo of the first part (about 1.7 million) give, at each claimed rate,
   the ratio observed / claimed; that ratio (at least 1, never smaller for a smaller rate)
   multiplies the table's FMR there (interpolated in log FMR, the last factor kept below 1e-5).
   Pairs of a fit-half photo and a photo of the second part, which neither step used, check the
   corrected table (``stranger_checks``); the strangers of ``facesearch eval open-set`` are that
   second part too.
6. The default threshold is the similarity of a round false-match rate, 10^-k per comparison: the
   power of ten nearest (on a log scale) to the FMR where FMR + FNMR is smallest on the fit half,
   i.e. where 1:1 accuracy over equal numbers of same and different pairs peaks. For dlib that
   optimum lies at FMR 1.2e-2, so the default is FMR 1e-2: similarity 1/3 (0.3333).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.eval.calibration import CalibrationTable, fit_calibration, similarity_for_fmr
from facesearch.eval.metrics import pairwise_distances

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CLAIMS = (1e-2, 1e-3, 1e-4, 1e-5)
SPLIT_RULE = "identities with an even sha256(name) (first byte) fit the table; odd ones check it"
DEFAULT_THRESHOLD_RULE = (
    "similarity of the power-of-ten FMR nearest (log scale) to the FMR minimising FMR + FNMR "
    "(best 1:1 accuracy on balanced pairs) on the fit half"
)


def identity_half(name: str) -> int:
    """0 (fit) or 1 (held out): the parity of the first byte of sha256(name)."""
    return hashlib.sha256(name.encode("utf-8")).digest()[0] & 1


def stranger_part(name: str) -> int:
    """Of a held-out identity: 0 (corrects the tail) or 1 (tests it), the second byte's parity."""
    return hashlib.sha256(name.encode("utf-8")).digest()[1] & 1


def pair_distance_sets(
    vectors: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    chunk_size: int = 1024,
    max_impostor_pairs: int = 20_000_000,
    seed: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """(genuine, impostor) Euclidean distances over every unordered pair of rows.

    Rows with equal labels are genuine pairs. When there are more than ``max_impostor_pairs``
    impostor pairs, each is kept with the same probability (seeded), so the distribution is
    unbiased; genuine pairs are always all kept.
    """
    x = np.asarray(vectors, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.int64)
    n = len(x)
    if x.ndim != 2 or lab.shape != (n,):
        raise ValueError("vectors must be a matrix with one label per row")
    _, counts = np.unique(lab, return_counts=True)
    n_pairs = n * (n - 1) // 2
    n_genuine = int((counts * (counts - 1) // 2).sum())
    keep = min(1.0, max_impostor_pairs / max(1, n_pairs - n_genuine))
    rng = np.random.default_rng(seed)
    genuine: list[FloatArray] = []
    impostor: list[FloatArray] = []
    for lo in range(0, n, chunk_size):
        hi = min(n, lo + chunk_size)
        d = pairwise_distances(x[lo:hi], x[lo:])
        rows, cols = np.triu_indices(hi - lo, 1, m=n - lo)
        dist = d[rows, cols]
        same = lab[lo:hi][rows] == lab[lo:][cols]
        genuine.append(dist[same])
        imp = dist[~same]
        if keep < 1.0:
            imp = imp[rng.random(imp.size) < keep]
        impostor.append(imp)
    empty = np.empty(0, dtype=np.float64)
    return (
        np.concatenate(genuine) if genuine else empty,
        np.concatenate(impostor) if impostor else empty,
    )


@dataclass(frozen=True)
class CalibrationCheck:
    """The table's claim at one FMR against what held-out pairs show."""

    claimed_fmr: float
    similarity: float
    distance: float
    observed_fmr: float
    false_matches: int
    n_impostor: int
    fnmr: float  # held-out genuine pairs farther than the distance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_calibration(
    table: CalibrationTable,
    genuine: npt.ArrayLike,
    impostor: npt.ArrayLike,
    claims: Sequence[float] = CLAIMS,
) -> list[CalibrationCheck]:
    """Observed FMR (and FNMR) on other pairs at the distance of each claimed FMR."""
    gen = np.sort(np.asarray(genuine, dtype=np.float64))
    imp = np.sort(np.asarray(impostor, dtype=np.float64))
    if imp.size == 0:
        raise ValueError("no impostor pairs to check the calibration on")
    out: list[CalibrationCheck] = []
    for claimed in claims:
        d = table.distance_for_fmr(claimed)
        false_matches = int(np.searchsorted(imp, d, side="right"))
        fnmr = float(1.0 - np.searchsorted(gen, d, side="right") / gen.size) if gen.size else math.nan
        out.append(
            CalibrationCheck(
                claimed_fmr=claimed,
                similarity=round(table.similarity(d), 6),
                distance=d,
                observed_fmr=false_matches / imp.size,
                false_matches=false_matches,
                n_impostor=int(imp.size),
                fnmr=fnmr,
            )
        )
    return out


def tail_correction(checks: Sequence[CalibrationCheck]) -> list[tuple[float, float, float]]:
    """(claimed FMR, observed/claimed ratio, factor) per check, from the largest rate to the
    smallest; the factor is the ratio, at least 1 and never smaller than that of a larger rate."""
    out: list[tuple[float, float, float]] = []
    factor = 1.0
    for c in sorted(checks, key=lambda c: -c.claimed_fmr):
        ratio = c.observed_fmr / c.claimed_fmr
        factor = max(factor, ratio)
        out.append((c.claimed_fmr, ratio, factor))
    return out


def corrected_table(
    table: CalibrationTable, correction: Sequence[tuple[float, float, float]]
) -> CalibrationTable:
    """``table`` with its FMR multiplied by the correction factor of each rate (interpolated in
    log FMR between the corrected rates, constant beyond them), capped at 1 and kept increasing."""
    if not correction:
        return table
    points = sorted((math.log10(c), f) for c, _, f in correction)
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    f = table.fmr_knots
    scaled = np.minimum(1.0, f * np.interp(np.log10(f), xs, ys))
    scaled[-1] = 1.0
    for i in range(len(scaled) - 2, -1, -1):  # strictly increasing, as the table requires
        if scaled[i] >= scaled[i + 1]:
            scaled[i] = scaled[i + 1] * (1.0 - 1e-9)
    return CalibrationTable(
        distance_knots=table.distance_knots,
        fmr_knots=scaled,
        tail_slope=table.tail_slope,
        genuine_knots=table.genuine_knots,
        genuine_cdf=table.genuine_cdf,
        n_impostor=table.n_impostor,
        n_genuine=table.n_genuine,
        meta=dict(table.meta),
    )


def balanced_optimum(table: CalibrationTable, grid_points: int = 4001) -> float:
    """The distance minimising FMR + FNMR according to the table (middle of a flat minimum)."""
    lo = float(min(table.distance_knots[0], table.genuine_knots[0]))
    hi = float(max(table.distance_knots[-1], table.genuine_knots[-1]))
    grid = np.linspace(lo, hi, grid_points)
    fmr = np.exp(table.log_fmr(grid))
    cdf = np.interp(grid, table.genuine_knots, table.genuine_cdf, left=0.0, right=1.0)
    cost = fmr + (1.0 - cdf)
    best = np.flatnonzero(cost <= cost.min() + 1e-12)
    return float(grid[best[len(best) // 2]])


def choose_default_threshold(table: CalibrationTable) -> tuple[float, float]:
    """(similarity, FMR): the power-of-ten FMR nearest to the balanced optimum (1e-1 to 1e-6)."""
    fmr = table.fmr(balanced_optimum(table))
    decade = min(6, max(1, round(-math.log10(max(fmr, 1e-12)))))
    target = 10.0**-decade
    return round(similarity_for_fmr(target), 4), target


@dataclass(frozen=True)
class CalibrationResult:
    """The fitted table (with its provenance in ``table.meta``) and the held-out checks."""

    table: CalibrationTable
    checks: tuple[CalibrationCheck, ...]
    fit_identities: int
    heldout_identities: int
    photos: int
    photos_without_face: int


@dataclass(frozen=True)
class PairSets:
    """The distance sets of the protocol: genuine and impostor pairs within the fit and held-out
    halves, and impostor pairs between the fit half and each part of the held-out identities."""

    fit_gen: FloatArray
    fit_imp: FloatArray
    held_gen: FloatArray
    held_imp: FloatArray
    across: tuple[FloatArray, FloatArray]  # fit x correcting part, fit x checking part
    counts: tuple[int, int]  # identities per half
    photos: int
    missing: int  # photos without a detected face


def split_pairs(
    faces: Mapping[str, Sequence[npt.ArrayLike | None]], *, max_impostor_pairs: int = 20_000_000
) -> PairSets:
    """Every pair the protocol scores (module docstring, steps 2, 3 and 5b)."""
    halves: list[tuple[list[FloatArray], list[int]]] = [([], []), ([], [])]
    counts = [0, 0]
    photos = missing = 0
    names = sorted(faces)
    for label, name in enumerate(names):
        half = identity_half(name)
        counts[half] += 1
        for vec in faces[name]:
            photos += 1
            if vec is None:
                missing += 1
                continue
            halves[half][0].append(np.asarray(vec, dtype=np.float64).ravel())
            halves[half][1].append(label)
    sets: list[tuple[FloatArray, FloatArray]] = []
    for rows, labels in halves:
        if len(rows) < 2:
            raise ValueError("each half of the identities needs photos with a detected face")
        sets.append(pair_distance_sets(np.vstack(rows), labels, max_impostor_pairs=max_impostor_pairs))
    parts: list[list[FloatArray]] = [[], []]
    for row, label in zip(halves[1][0], halves[1][1], strict=True):
        parts[stranger_part(names[label])].append(row)
    if not parts[0] or not parts[1]:
        raise ValueError("the held-out identities are too few to correct and check the tail")
    fit_rows = np.vstack(halves[0][0])
    a, b = (pairwise_distances(fit_rows, np.vstack(rows)).ravel() for rows in parts)
    (fit_gen, fit_imp), (held_gen, held_imp) = sets
    return PairSets(fit_gen, fit_imp, held_gen, held_imp, (a, b), (counts[0], counts[1]), photos, missing)


def check_identities(
    table: CalibrationTable, faces: Mapping[str, Sequence[npt.ArrayLike | None]]
) -> dict[str, list[CalibrationCheck]]:
    """A table's claims against pairs of these photos, writing nothing: the held-out half's own
    pairs, and the pairs between the fit half and the checking part of the held-out identities."""
    p = split_pairs(faces)
    return {
        "heldout_checks": check_calibration(table, p.held_gen, p.held_imp),
        "stranger_checks": check_calibration(table, p.held_gen, p.across[1]),
    }


def calibrate_identities(
    faces: Mapping[str, Sequence[npt.ArrayLike | None]],
    *,
    meta: Mapping[str, Any] | None = None,
    max_impostor_pairs: int = 20_000_000,
) -> CalibrationResult:
    """Fit on one half of the identities, check on the other (module docstring)."""
    p = split_pairs(faces, max_impostor_pairs=max_impostor_pairs)
    counts, photos, missing = p.counts, p.photos, p.missing
    fit_gen, fit_imp, held_gen, held_imp, across = p.fit_gen, p.fit_imp, p.held_gen, p.held_imp, p.across
    fitted = fit_calibration(fit_imp, fit_gen)
    correction = tail_correction(check_calibration(fitted, held_gen, across[0]))
    table = corrected_table(fitted, correction)
    uncorrected = tuple(check_calibration(fitted, held_gen, held_imp))
    checks = tuple(check_calibration(table, held_gen, held_imp))
    stranger_checks = tuple(check_calibration(table, held_gen, across[1]))
    default, default_fmr = choose_default_threshold(table)
    optimum = balanced_optimum(table)
    info: dict[str, Any] = {
        **dict(meta or {}),
        "split": SPLIT_RULE,
        "fit_identities": counts[0],
        "heldout_identities": counts[1],
        "fit_pairs": {"genuine": int(fit_gen.size), "impostor": int(fit_imp.size)},
        "heldout_pairs": {"genuine": int(held_gen.size), "impostor": int(held_imp.size)},
        "photos": photos,
        "photos_without_face": missing,
        "default_threshold": default,
        "default_threshold_fmr": default_fmr,
        "balanced_optimum": {"distance": round(optimum, 6), "fmr": table.fmr(optimum)},
        "default_threshold_rule": DEFAULT_THRESHOLD_RULE,
        "default_threshold_distance": round(table.distance_for_similarity(default), 6),
        "heldout_checks": [c.to_dict() for c in checks],
        "uncorrected_heldout_checks": [c.to_dict() for c in uncorrected],
        "tail_correction": [
            {"claimed_fmr": c, "observed_ratio_across": round(r, 4), "factor": round(f, 4)}
            for c, r, f in correction
        ],
        "tail_correction_pairs": int(across[0].size),
        "stranger_checks": [c.to_dict() for c in stranger_checks],
    }
    table = CalibrationTable(
        distance_knots=table.distance_knots,
        fmr_knots=table.fmr_knots,
        tail_slope=table.tail_slope,
        genuine_knots=table.genuine_knots,
        genuine_cdf=table.genuine_cdf,
        n_impostor=table.n_impostor,
        n_genuine=table.n_genuine,
        meta=info,
    )
    return CalibrationResult(table, checks, counts[0], counts[1], photos, missing)
