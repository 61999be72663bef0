"""Verification and identification metrics over distances (lower = more alike), pure numpy.

Conventions shared by every function here:

* a pair is *predicted same* when ``distance <= threshold``;
* ``+inf`` is a valid distance (a detection failure scored as the worst possible match) and is never
  accepted by a finite threshold; NaN is rejected with ``ValueError``;
* rates are shares in [0, 1]; thresholds are in distance units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def _floats(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _bools(values: npt.ArrayLike, name: str) -> BoolArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1)")
        arr = arr.astype(np.bool_)
    return arr


def _scored(distances: npt.ArrayLike, same: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    d = _floats(distances, "distances")
    s = _bools(same, "same")
    if d.shape != s.shape:
        raise ValueError(f"distances and same differ in length: {d.size} != {s.size}")
    if d.size == 0:
        raise ValueError("no pairs to score")
    return d, s


def _both_classes(same: BoolArray) -> tuple[int, int]:
    n_same = int(same.sum())
    n_diff = int(same.size - n_same)
    if n_same == 0 or n_diff == 0:
        raise ValueError("need at least one same pair and one different pair")
    return n_same, n_diff


def _finite_unique(d: FloatArray) -> FloatArray:
    u = np.unique(d[np.isfinite(d)])
    if u.size == 0:
        raise ValueError("no finite distance to place a threshold between")
    return u


def euclidean(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """L2 distance between two vectors."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def cosine_distance(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """1 - cosine similarity (0 for the same direction, 2 for opposite ones)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return float(1.0 - np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


def pairwise_distances(
    a: npt.NDArray[Any], b: npt.NDArray[Any], metric: Literal["euclidean", "cosine"] | str = "euclidean"
) -> FloatArray:
    """(len(a) x len(b)) distances between the rows of two matrices with one matmul."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        y = y / np.linalg.norm(y, axis=1, keepdims=True)
        return np.asarray(1.0 - x @ y.T, dtype=np.float64)
    if metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}")
    out = x @ y.T  # in place from here on: these matrices are large
    out *= -2.0
    out += np.einsum("ij,ij->i", x, x)[:, None]
    out += np.einsum("ij,ij->i", y, y)[None, :]
    np.maximum(out, 0.0, out=out)
    return np.sqrt(out, out=out)


def search_gallery(
    probes: npt.NDArray[Any],
    probe_labels: npt.ArrayLike,
    gallery: npt.NDArray[Any],
    gallery_labels: npt.ArrayLike,
    *,
    metric: Literal["euclidean", "cosine"] | str = "euclidean",
    chunk_size: int = 1024,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Search each probe row against the gallery rows, per identity label (closest row per label).

    Returns (rank, own_distance, top1_other) per probe: the 1-based rank of the probe's own label
    (labels at a distance <= the own one count ahead of it; 0 when the label is not in the gallery,
    e.g. -1), the distance to the own label (+inf if absent) and the smallest distance to any other
    label (+inf if none), i.e. the top-1 of a leave-one-out search. Probes are processed in chunks
    of ``chunk_size`` rows, one matmul each.
    """
    p_lab = np.asarray(probe_labels, dtype=np.int64)
    g_lab = np.asarray(gallery_labels, dtype=np.int64)
    if p_lab.shape != (len(probes),) or g_lab.shape != (len(gallery),) or len(gallery) == 0:
        raise ValueError("labels must match the rows of non-empty matrices")
    order = np.argsort(g_lab, kind="stable")
    labels, starts = np.unique(g_lab[order], return_index=True)
    sorted_gallery = np.asarray(gallery, dtype=np.float64)[order]  # columns come out grouped by label
    one_per_label = labels.size == g_lab.size
    col = np.searchsorted(labels, p_lab).clip(0, labels.size - 1)
    present = labels[col] == p_lab
    rank = np.zeros(p_lab.size, dtype=np.int64)
    own = np.full(p_lab.size, math.inf)
    other = np.full(p_lab.size, math.inf)
    for lo in range(0, p_lab.size, chunk_size):
        sl = slice(lo, lo + chunk_size)
        dist = pairwise_distances(probes[sl], sorted_gallery, metric)
        per_label = dist if one_per_label else np.minimum.reduceat(dist, starts, axis=1)
        rows = np.arange(per_label.shape[0])
        here = present[sl]
        own_d = np.where(here, per_label[rows, col[sl]], math.inf)
        rank[sl] = np.where(here, (per_label <= own_d[:, None]).sum(axis=1), 0)
        own[sl] = own_d
        per_label[rows[here], col[sl][here]] = math.inf
        other[sl] = per_label.min(axis=1)
    return rank, own, other


def accuracy_at(distances: npt.ArrayLike, same: npt.ArrayLike, threshold: float) -> float:
    """Share of pairs classified correctly when ``distance <= threshold`` predicts same."""
    d, s = _scored(distances, same)
    return float(np.mean((d <= threshold) == s))


def best_threshold(distances: npt.ArrayLike, same: npt.ArrayLike) -> float:
    """The threshold maximising accuracy.

    Candidates are the midpoints of consecutive sorted unique finite distances, plus one point below
    the smallest and one above the largest (half the mean gap away). Among the candidates reaching
    the best accuracy, the widest contiguous run (in distance; the lower one on ties) is kept and the
    middle of that plateau is returned.
    """
    d, s = _scored(distances, same)
    u = _finite_unique(d)
    pad = (u[-1] - u[0]) / (u.size - 1) / 2.0 if u.size > 1 else 0.5 * max(abs(float(u[0])), 1.0)
    cands = np.concatenate(([u[0] - pad], (u[:-1] + u[1:]) / 2.0, [u[-1] + pad]))
    pos = np.sort(d[s])
    neg = np.sort(d[~s])
    true_acc = np.searchsorted(pos, cands, side="right")
    true_rej = neg.size - np.searchsorted(neg, cands, side="right")
    correct = true_acc + true_rej
    best_idx = np.flatnonzero(correct == correct.max())
    breaks = np.flatnonzero(np.diff(best_idx) > 1)
    starts = best_idx[np.concatenate(([0], breaks + 1))]
    ends = best_idx[np.concatenate((breaks, [best_idx.size - 1]))]
    widths = cands[ends] - cands[starts]
    k = int(np.argmax(widths))
    return float((cands[starts[k]] + cands[ends[k]]) / 2.0)


def _average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    avg = first + (counts + 1) / 2.0
    return np.asarray(avg[inverse], dtype=np.float64)


def roc_auc(distances: npt.ArrayLike, same: npt.ArrayLike) -> float:
    """P(a random same pair is closer than a random different pair), ties counting half.

    Mann-Whitney U from average ranks, O(n log n).
    """
    d, s = _scored(distances, same)
    n_same, n_diff = _both_classes(s)
    ranks = _average_ranks(d)
    u_stat = float(ranks[~s].sum()) - n_diff * (n_diff + 1) / 2.0
    return u_stat / (n_same * n_diff)


def _threshold_at_rate(impostors: FloatArray, rate: float) -> float:
    """Largest threshold accepting at most ``floor(rate * n)`` of ``impostors`` (``d <= t``)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if impostors.size == 0:
        raise ValueError("no impostor scores")
    allowed = math.floor(rate * impostors.size + 1e-9)
    if allowed >= impostors.size:
        return math.inf
    kth = float(np.partition(impostors, allowed)[allowed])
    # Everything strictly below the (allowed+1)-th smallest impostor; ties there are refused too.
    return float(np.nextafter(kth, -math.inf))


def tar_at_far(distances: npt.ArrayLike, same: npt.ArrayLike, far: float) -> tuple[float, float]:
    """(TAR, threshold): the threshold is the largest with a false-accept rate <= ``far``.

    With n different pairs at most ``floor(far * n)`` of them may be accepted, so 500 impostors at
    FAR 1e-3 allow none. The threshold is the largest float below the (k+1)-th smallest impostor
    distance (``+inf`` when ``far`` allows every impostor).
    """
    d, s = _scored(distances, same)
    _both_classes(s)
    t = _threshold_at_rate(d[~s], far)
    return float(np.mean(d[s] <= t)), t


def equal_error_rate(distances: npt.ArrayLike, same: npt.ArrayLike) -> tuple[float, float]:
    """(EER, threshold) where the false-accept rate equals the false-reject rate.

    FAR(t) and FRR(t) are evaluated at every unique finite distance and linearly interpolated
    between the two points where FAR - FRR changes sign. When they are exactly equal over a range of
    thresholds, the middle of that range is returned.
    """
    d, s = _scored(distances, same)
    n_same, n_diff = _both_classes(s)
    u = _finite_unique(d)
    pos = np.sort(d[s])
    neg = np.sort(d[~s])
    # Virtual first point (just below every distance) and last point (accept everything).
    t = np.concatenate(([u[0]], u, [u[-1]]))
    fa = np.concatenate(([0], np.searchsorted(neg, u, side="right"), [n_diff])).astype(np.int64)
    fr = np.concatenate(([n_same], n_same - np.searchsorted(pos, u, side="right"), [0])).astype(np.int64)
    sign = fa * n_same - fr * n_diff  # exact sign of FAR - FRR
    i = int(np.argmax(sign >= 0))
    if sign[i] == 0:
        j = i
        while j + 1 < sign.size and sign[j + 1] == 0:
            j += 1
        hi = t[j + 1] if j + 1 < t.size else t[j]
        return float(fa[i] / n_diff), float((t[i] + hi) / 2.0)
    far = fa / n_diff
    frr = fr / n_same
    g0 = far[i - 1] - frr[i - 1]
    g1 = far[i] - frr[i]
    alpha = -g0 / (g1 - g0)
    eer = far[i - 1] + alpha * (far[i] - far[i - 1])
    thr = t[i - 1] + alpha * (t[i] - t[i - 1])
    return float(eer), float(thr)


@dataclass(frozen=True)
class KFoldResult:
    """Per-fold accuracies and thresholds; ``std`` is the population std (ddof=0) over folds."""

    accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]
    mean: float
    std: float


def kfold_accuracy(
    distances: npt.ArrayLike, same: npt.ArrayLike, folds: Sequence[npt.ArrayLike]
) -> KFoldResult:
    """Accuracy of each fold at the threshold chosen (``best_threshold``) on the other folds only."""
    d, s = _scored(distances, same)
    if len(folds) < 2:
        raise ValueError("k-fold evaluation needs at least two folds")
    idx = [np.asarray(f, dtype=np.int64) for f in folds]
    for k, f in enumerate(idx):
        if f.ndim != 1 or f.size == 0:
            raise ValueError(f"fold {k} must be a non-empty 1-D index array")
        if f.min() < 0 or f.max() >= d.size:
            raise ValueError(f"fold {k} has an index outside 0..{d.size - 1}")
    accs: list[float] = []
    thrs: list[float] = []
    for k, test in enumerate(idx):
        train = np.concatenate([f for j, f in enumerate(idx) if j != k])
        thr = best_threshold(d[train], s[train])
        thrs.append(thr)
        accs.append(accuracy_at(d[test], s[test], thr))
    arr = np.asarray(accs)
    return KFoldResult(tuple(accs), tuple(thrs), float(arr.mean()), float(arr.std()))


def fnir_at_fpir(
    mated_rank1_correct: npt.ArrayLike,
    mated_rank1_distance: npt.ArrayLike,
    nonmated_top1_distance: npt.ArrayLike,
    fpir: float,
) -> tuple[float, float]:
    """Open-set identification (NIST FRVT 1:N): (FNIR, threshold) at a false-positive rate ``fpir``.

    The threshold t is the largest with at most ``floor(fpir * n)`` non-mated probes whose top-1
    distance is <= t. FNIR is the share of mated probes whose correct identity is not returned at
    rank 1 with distance <= t (``mated_rank1_correct`` false, or the distance above t).
    """
    correct = _bools(mated_rank1_correct, "mated_rank1_correct")
    dist = _floats(mated_rank1_distance, "mated_rank1_distance")
    nonmated = _floats(nonmated_top1_distance, "nonmated_top1_distance")
    if correct.shape != dist.shape:
        raise ValueError("mated_rank1_correct and mated_rank1_distance differ in length")
    if correct.size == 0:
        raise ValueError("no mated probes")
    t = _threshold_at_rate(nonmated, fpir)
    hits = correct & (dist <= t)
    return float(1.0 - hits.mean()), t


def rank_k_rate(ranks: npt.ArrayLike, k: int) -> float:
    """Share of probes found at rank <= k (ranks are 1-based; 0 or negative means not found)."""
    r = np.asarray(ranks)
    if r.ndim != 1 or r.size == 0:
        raise ValueError("ranks must be a non-empty 1-D array")
    if not np.issubdtype(r.dtype, np.integer):
        raise ValueError("ranks must be integers")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(np.mean((r >= 1) & (r <= k)))
