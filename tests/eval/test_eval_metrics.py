"""Hand-computed checks of the distance metrics and of the FMR calibration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facesearch.eval.calibration import (
    CalibrationTable,
    fit_calibration,
    fmr_for_similarity,
    similarity_for_fmr,
)
from facesearch.eval.metrics import (
    accuracy_at,
    best_threshold,
    cosine_distance,
    equal_error_rate,
    euclidean,
    fnir_at_fpir,
    kfold_accuracy,
    pairwise_distances,
    rank_k_rate,
    roc_auc,
    search_gallery,
    tar_at_far,
)


def scores(same: list[float], diff: list[float]) -> tuple[np.ndarray, np.ndarray]:
    d = np.array(same + diff, dtype=np.float64)
    s = np.array([True] * len(same) + [False] * len(diff))
    return d, s


# -- best_threshold / accuracy ------------------------------------------------------------------


def test_best_threshold_separable_is_midpoint_of_the_gap() -> None:
    d, s = scores([0.1, 0.2, 0.3], [0.7, 0.8])
    t = best_threshold(d, s)
    assert t == pytest.approx(0.5)
    assert accuracy_at(d, s, t) == 1.0


def test_best_threshold_overlapping() -> None:
    # Candidates .2 .35 .5 .65 .8 score 4,3,4,5,4 correct out of 6.
    d, s = scores([0.1, 0.4, 0.6], [0.3, 0.7, 0.9])
    t = best_threshold(d, s)
    assert t == pytest.approx(0.65)
    assert accuracy_at(d, s, t) == pytest.approx(5 / 6)


def test_best_threshold_tie_goes_to_middle_of_plateau() -> None:
    # 0.35 and 0.65 both give 5/6 (a same and a different pair tie at 0.5): middle is 0.5.
    d, s = scores([0.1, 0.2, 0.5], [0.5, 0.8, 0.9])
    assert best_threshold(d, s) == pytest.approx(0.5)


def test_best_threshold_one_class_and_infinities() -> None:
    d, s = scores([0.1, 0.2], [])
    assert accuracy_at(d, s, best_threshold(d, s)) == 1.0
    d, s = scores([0.1, math.inf], [0.9])
    t = best_threshold(d, s)
    assert math.isfinite(t) and accuracy_at(d, s, t) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        best_threshold([math.inf, math.inf], [True, False])


def test_nan_and_shape_mismatch_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0.1, math.nan], [True, False])
    with pytest.raises(ValueError, match="length"):
        accuracy_at([0.1, 0.2], [True], 0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20).map(lambda v: v / 10), st.booleans()), min_size=1, max_size=30))
def test_best_threshold_is_optimal(rows: list[tuple[float, bool]]) -> None:
    d = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    brute = max(accuracy_at(d, s, t) for t in [-1.0, *d.tolist()])
    assert accuracy_at(d, s, best_threshold(d, s)) == pytest.approx(brute)


# -- ROC AUC --------------------------------------------------------------------------------------


def test_roc_auc_perfect_reversed_and_ties() -> None:
    assert roc_auc(*scores([0.1, 0.2], [0.3, 0.4])) == 1.0
    assert roc_auc(*scores([0.3, 0.4], [0.1, 0.2])) == 0.0
    assert roc_auc(*scores([0.5, 0.5], [0.5, 0.5])) == 0.5
    # (0.1,0.5)=1 (0.1,0.9)=1 (0.5,0.5)=0.5 (0.5,0.9)=1 -> 3.5/4
    assert roc_auc(*scores([0.1, 0.5], [0.5, 0.9])) == pytest.approx(0.875)
    with pytest.raises(ValueError):
        roc_auc(*scores([0.1], []))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 8).map(float), min_size=1, max_size=15),
    st.lists(st.integers(0, 8).map(float), min_size=1, max_size=15),
)
def test_roc_auc_matches_brute_force(same: list[float], diff: list[float]) -> None:
    total = sum(1.0 if a < b else 0.5 if a == b else 0.0 for a in same for b in diff)
    assert roc_auc(*scores(same, diff)) == pytest.approx(total / (len(same) * len(diff)))


# -- TAR@FAR --------------------------------------------------------------------------------------


def test_tar_at_far_exact_counts() -> None:
    impostors = [round(0.1 * i, 1) for i in range(1, 11)]  # 0.1 .. 1.0
    d, s = scores([0.05, 0.15, 0.19, 0.2, 0.3], impostors)
    tar, thr = tar_at_far(d, s, 0.1)  # exactly one false accept allowed: 0.1
    assert thr == np.nextafter(0.2, -math.inf)
    assert tar == pytest.approx(3 / 5)
    assert np.mean(np.array(impostors) <= thr) == pytest.approx(0.1)
    tar0, thr0 = tar_at_far(d, s, 0.0)
    assert thr0 < 0.1 and tar0 == pytest.approx(1 / 5)
    tar2, thr2 = tar_at_far(d, s, 0.25)  # floor(2.5) = 2 false accepts
    assert thr2 == np.nextafter(0.3, -math.inf) and tar2 == pytest.approx(4 / 5)
    assert tar_at_far(d, s, 1.0) == (1.0, math.inf)


def test_tar_at_far_tiny_far_allows_nothing_and_ties_are_refused() -> None:
    rng = np.random.default_rng(1)
    imp = rng.uniform(0.5, 1.0, 500)
    d, s = scores([0.1, 0.6, 2.0], imp.tolist())
    tar, thr = tar_at_far(d, s, 1e-3)
    assert np.sum(imp <= thr) == 0 and thr == np.nextafter(imp.min(), -math.inf)
    # One false accept allowed, but the two smallest impostors tie: neither may be accepted.
    d, s = scores([0.1, 0.3], [0.2, 0.2] + [0.9] * 8)
    tar, thr = tar_at_far(d, s, 0.1)
    assert thr < 0.2 and tar == 0.5


# -- EER ------------------------------------------------------------------------------------------


def test_eer_symmetric_case() -> None:
    # Mirror images about 0.55: FAR = FRR = 1/3 for every threshold in [0.5, 0.6).
    eer, thr = equal_error_rate(*scores([0.2, 0.4, 0.6], [0.5, 0.7, 0.9]))
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.55)


def test_eer_interpolated_and_separable() -> None:
    # At 2: FAR 0, FRR 1/3; at 2.5: FAR 1/2, FRR 1/3 -> crossing 2/3 of the way: t = 7/3, EER = 1/3.
    eer, thr = equal_error_rate(*scores([1.0, 2.0, 3.0], [2.5, 4.0]))
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(7 / 3)
    assert equal_error_rate(*scores([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0])) == (0.0, 4.5)


# -- k-fold ---------------------------------------------------------------------------------------


def test_kfold_threshold_uses_only_the_other_folds() -> None:
    fold0 = ([0.6, 0.7], [0.75, 0.9])  # would pull the threshold to 0.725 if it leaked
    fold1 = ([0.1, 0.2], [0.8, 0.9])
    fold2 = ([0.15, 0.25], [0.85, 0.95])
    d_parts, s_parts, folds, start = [], [], [], 0
    for same, diff in (fold0, fold1, fold2):
        d, s = scores(same, diff)
        d_parts.append(d)
        s_parts.append(s)
        folds.append(np.arange(start, start + d.size))
        start += d.size
    d, s = np.concatenate(d_parts), np.concatenate(s_parts)
    assert best_threshold(d, s) == pytest.approx(0.725)  # the leaky choice
    res = kfold_accuracy(d, s, folds)
    assert res.thresholds == pytest.approx((0.525, 0.725, 0.725))
    assert res.accuracies == pytest.approx((0.5, 1.0, 1.0))
    assert res.mean == pytest.approx(2.5 / 3)
    assert res.std == pytest.approx(float(np.std([0.5, 1.0, 1.0])))
    with pytest.raises(ValueError):
        kfold_accuracy(d, s, [np.arange(d.size)])


# -- open set / ranks -----------------------------------------------------------------------------


def test_fnir_at_fpir_hand_case() -> None:
    nonmated = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    correct = [True, True, True, False, True]
    dist = [0.2, 0.4, 0.5, 0.1, 0.45]
    fnir, thr = fnir_at_fpir(correct, dist, nonmated, 0.1)  # one false positive allowed: 0.3
    assert thr == np.nextafter(0.5, -math.inf)
    assert fnir == pytest.approx(2 / 5)  # hits: 0.2, 0.4, 0.45; 0.5 is too far, 0.1 is the wrong person
    fnir, thr = fnir_at_fpir(correct, dist, nonmated, 0.0)
    assert thr < 0.3 and fnir == pytest.approx(4 / 5)


def test_rank_k_rate() -> None:
    ranks = np.array([1, 2, 0, 5, -1, 1])
    assert rank_k_rate(ranks, 1) == pytest.approx(2 / 6)
    assert rank_k_rate(ranks, 2) == pytest.approx(3 / 6)
    assert rank_k_rate(ranks, 5) == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        rank_k_rate(ranks, 0)


def test_search_gallery_ranks_ties_and_leave_one_out() -> None:
    gallery = np.array([[0.0], [1.0], [3.0], [0.2]])
    labels = [0, 1, 2, 0]  # label 0 has two photos: its closest one counts
    probes = np.array([[0.1], [2.0], [3.2], [0.9]])
    rank, own, other = search_gallery(probes, [0, 2, -1, 0], gallery, labels, chunk_size=2)
    assert rank.tolist() == [1, 2, 0, 2]  # probe 2 ties labels 1 and 2 at distance 1: counted against
    assert own == pytest.approx([0.1, 1.0, math.inf, 0.7])
    assert other == pytest.approx([0.9, 1.0, 0.2, 0.1])


def test_pairwise_distances_match_scalar_versions() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    eu = pairwise_distances(a, b)
    co = pairwise_distances(a, b, "cosine")
    for i in range(4):
        for j in range(3):
            assert eu[i, j] == pytest.approx(euclidean(a[i], b[j]))
            assert co[i, j] == pytest.approx(cosine_distance(a[i], b[j]))
    with pytest.raises(ValueError):
        pairwise_distances(a, b, "manhattan")


# -- calibration ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> CalibrationTable:
    rng = np.random.default_rng(7)
    return fit_calibration(rng.normal(1.2, 0.1, 20_000), rng.normal(0.5, 0.1, 2_000))


def test_calibration_is_monotone_and_keeps_falling_in_the_tail(table: CalibrationTable) -> None:
    grid = np.linspace(0.0, 2.0, 4001)
    f = np.exp(table.log_fmr(grid))
    assert (np.diff(f) >= 0).all()
    assert f[-1] == 1.0 and f[0] > 0.0
    lowest = float(table.distance_knots[0])
    below = [table.fmr(lowest - k * 0.05) for k in range(1, 6)]
    assert all(b < a for a, b in zip([table.fmr(lowest), *below], below, strict=False))
    assert below[0] < 10 / 20_000
    s = table.similarities(grid)
    assert (np.diff(s) <= 0).all() and s.min() == 0.0 and s.max() == 1.0


def test_calibration_inverse_round_trips(table: CalibrationTable) -> None:
    for f in (0.5, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-7):
        assert table.fmr(table.distance_for_fmr(f)) == pytest.approx(f, rel=1e-9)
    for d in (0.6, 0.9, 1.0, 1.1, 1.3):
        assert table.distance_for_fmr(table.fmr(d)) == pytest.approx(d, abs=1e-9)
    assert table.distance_for_fmr(1.0) == table.distance_knots[-1]
    with pytest.raises(ValueError):
        table.distance_for_fmr(0.0)


def test_similarity_mapping(table: CalibrationTable) -> None:
    assert table.similarity(table.distance_for_fmr(1e-3)) == pytest.approx(0.5, abs=1e-6)
    assert table.similarity(table.distance_for_fmr(1e-2)) == pytest.approx(1 / 3, abs=1e-6)
    assert table.similarity(table.distance_for_fmr(1e-4)) == pytest.approx(2 / 3, abs=1e-6)
    assert table.similarity(table.distance_for_fmr(1e-8)) == 1.0
    assert fmr_for_similarity(0.5) == pytest.approx(1e-3)
    assert similarity_for_fmr(1e-6) == pytest.approx(1.0) and similarity_for_fmr(1.0) == 0.0
    assert table.distance_for_similarity(0.5) == pytest.approx(table.distance_for_fmr(1e-3))


def test_threshold_for_gallery_is_stricter_for_larger_galleries() -> None:
    one = CalibrationTable.threshold_for_gallery(0.01, 1)
    assert one == pytest.approx(1 / 3)
    sizes = [1, 10, 100, 1000, 10_000]
    thresholds = [CalibrationTable.threshold_for_gallery(0.01, n) for n in sizes]
    assert all(b > a for a, b in zip(thresholds, thresholds[1:], strict=False))
    # 1 - (1 - 0.01)^(1/1000) ~ 1.005e-5 per comparison
    assert CalibrationTable.fmr_for_similarity(thresholds[3]) == pytest.approx(1 - 0.99 ** (1 / 1000))
    with pytest.raises(ValueError):
        CalibrationTable.threshold_for_gallery(0.0, 10)


def test_calibration_json_round_trip(table: CalibrationTable) -> None:
    text = table.to_json()
    assert json.loads(text)["format"] == "facesearch-calibration"
    back = CalibrationTable.from_json(text)
    for d in (0.3, 0.8, 1.0, 1.25, 5.0):
        assert back.fmr(d) == table.fmr(d) and back.fnmr(d) == table.fnmr(d)
    with pytest.raises(ValueError):
        CalibrationTable.from_json('{"format": "other"}')
    bad = json.loads(text)
    bad["fmr_knots"] = bad["fmr_knots"][::-1]
    with pytest.raises(ValueError):
        CalibrationTable.from_dict(bad)


def test_calibration_genuine_side_and_input_checks(table: CalibrationTable) -> None:
    assert table.fnmr(0.5) == pytest.approx(0.5, abs=0.05)
    assert table.fnmr(0.0) == 1.0 and table.fnmr(2.0) == 0.0
    with pytest.raises(ValueError):
        fit_calibration(np.linspace(0, 1, 50), [0.1])
    with pytest.raises(ValueError):
        fit_calibration(np.linspace(0, 1, 500), [math.nan])


def test_calibration_held_out_fmr() -> None:
    rng = np.random.default_rng(2024)
    imp = rng.normal(1.2, 0.1, 200_000)
    fit, held_out = imp[:100_000], imp[100_000:]
    table = fit_calibration(fit, rng.normal(0.5, 0.1, 5_000))
    for claimed in (1e-2, 1e-3):
        observed = float(np.mean(held_out <= table.distance_for_fmr(claimed)))
        assert 0.5 * claimed <= observed <= 2.0 * claimed
    # Extrapolated tail errs on the safe side for a Gaussian: true FMR below the claimed one.
    d6 = table.distance_for_fmr(1e-6)
    true_fmr = 0.5 * math.erfc((1.2 - d6) / (0.1 * math.sqrt(2)))
    assert 1e-8 < true_fmr <= 1e-6
