"""`facesearch eval verify | identify | calibrate` end to end with the fake pack, and their helpers.

The fake pack's faces are coloured squares: colour (r, g) is the identity, b the photo (shade b is
0.05 * b away from shade 0 along a random direction), strangers are about 1.41 apart. So the
expected answers are known: perfectly separable pairs, except where a photo has no face.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import facesearch.pipeline
from facesearch.cli import app
from facesearch.errors import ValidationError
from facesearch.eval.calibration import CalibrationTable, fit_calibration
from facesearch.eval.embedcache import CachedFace, EmbeddingCache, pipeline_fingerprint
from facesearch.eval.fitting import (
    CalibrationCheck,
    balanced_optimum,
    check_calibration,
    choose_default_threshold,
    corrected_table,
    identity_half,
    pair_distance_sets,
    tail_correction,
)
from facesearch.eval.metrics import best_threshold, pairwise_distances
from facesearch.eval.openset import open_set_split
from fakes import colour_embedding, fake_pack, person_photo

runner = CliRunner()
BLACK = person_photo(0, 0, 0, side=0)  # no face at all


@pytest.fixture(autouse=True)
def fake_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    real = facesearch.pipeline.build_pack

    def build(name: str) -> Any:
        return fake_pack(name) if name.startswith("fake") else real(name)

    monkeypatch.setattr(facesearch.pipeline, "build_pack", build)


def colour(i: int) -> tuple[int, int]:
    return (10 + i % 200, 20 + i // 200)


def make_set(root: Path, photos_per_person: list[int], no_face: set[tuple[int, int]] = frozenset()) -> Path:
    """root/P{i}/P{i}_{j:04d}.jpg: person i's photo j (1-based) is shade j - 1 of colour(i)."""
    for i, n in enumerate(photos_per_person):
        folder = root / f"P{i}"
        folder.mkdir(parents=True)
        for j in range(1, n + 1):
            data = BLACK if (i, j) in no_face else person_photo(*colour(i), j - 1)
            (folder / f"P{i}_{j:04d}.jpg").write_bytes(data)
    return root


def emb(i: int, j: int) -> np.ndarray:
    return colour_embedding(*colour(i), j - 1).astype(np.float64)


def run(*args: str) -> Any:
    result = runner.invoke(app, ["eval", *args])
    return result


# --- verify --------------------------------------------------------------------------------------


def write_pairs(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def test_verify_kfold_known_answer_and_cache(tmp_path: Path) -> None:
    images = make_set(tmp_path / "lfw", [3] * 12, no_face={(0, 2)})
    # Two folds of 3 same + 3 different pairs; fold 0's first same pair has a photo without a face.
    lines = ["P0 1 2", "P1 1 2", "P2 1 3", "P3 1 P4 1", "P5 2 P6 1", "P7 3 P8 1"]
    lines += ["P4 1 2", "P5 1 3", "P6 2 3", "P9 1 P10 1", "P10 2 P11 3", "P11 1 P0 1"]
    pairs = write_pairs(tmp_path / "pairs.txt", "2 3", lines)
    cache = tmp_path / "cache"
    args = ["verify", "--pairs", str(pairs), "--images", str(images), "--pack", "fake"]
    result = run(*args, "--json", "--cache-dir", str(cache), "--workers", "0")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["is_kfold"] and r["n_folds"] == 2 and r["n_pairs"] == 12
    assert r["detection_failures"] == 1 and r["pairs_affected"] == 1
    assert r["failed_images"] == [str(images / "P0" / "P0_0002.jpg")]
    # The failed same pair is predicted "different": fold 0 gets 5/6, fold 1 all 6 right.
    assert r["fold_accuracies"] == pytest.approx([5 / 6, 1.0])
    assert r["accuracy"] == pytest.approx(11 / 12) and r["accuracy_std"] == pytest.approx(1 / 12)
    # Each fold's threshold is chosen on the other fold only: the middle of its same/different gap.
    fold1_same = [np.linalg.norm(emb(4, 1) - emb(4, 2)), np.linalg.norm(emb(5, 1) - emb(5, 3))]
    fold1_same.append(np.linalg.norm(emb(6, 2) - emb(6, 3)))
    fold1_diff = [np.linalg.norm(emb(9, 1) - emb(10, 1)), np.linalg.norm(emb(10, 2) - emb(11, 3))]
    fold1_diff.append(np.linalg.norm(emb(11, 1) - emb(0, 1)))
    expected = best_threshold(fold1_same + fold1_diff, [True] * 3 + [False] * 3)
    assert r["fold_thresholds"][0] == pytest.approx(expected, rel=1e-5)
    # The +inf same pair is farther than every different pair: AUC 5/6; no finite overlap: EER
    # interpolates between (FAR 0, FRR 1/6) and the next point.
    assert r["roc_auc"] == pytest.approx(5 / 6)
    assert r["n_images"] == 22 and r["photos_embedded_now"] == 22 and r["pack"] == "fake"
    json.dumps(r, allow_nan=False)
    # Second run: everything comes from the disk cache.
    again = json.loads(run(*args, "--json", "--cache-dir", str(cache), "--workers", "0").stdout)
    assert again["photos_embedded_now"] == 0 and again["fold_accuracies"] == r["fold_accuracies"]
    assert len(list(cache.glob("fake-*.npz"))) == 1
    text = run(*args, "--cache-dir", str(cache), "--workers", "0")
    assert text.exit_code == 0, text.output
    assert "accuracy:   91.67% +- 8.33%" in text.output
    assert "fold  1: 83.33%" in text.output and "no face: " in text.output


def test_verify_single_list_reports_fixed_threshold(tmp_path: Path) -> None:
    images = make_set(tmp_path / "lfw", [2] * 4)
    pairs = write_pairs(tmp_path / "dev.txt", "2", ["P0 1 2", "P1 1 2", "P2 1 P3 1", "P0 2 P3 2"])
    result = run("verify", "--pairs", str(pairs), "--images", str(images), "--pack", "fake", "--json",
                 "--cache-dir", str(tmp_path / "c"), "--workers", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert not r["is_kfold"] and r["accuracy"] == 1.0 and r["accuracy_std"] is None
    assert r["default_threshold"] == 0.5 and r["accuracy_at_fixed_threshold"] == 1.0
    assert r["eer"] == 0.0 and r["tar_at_far_1e2"] == 1.0 and r["calibrated"] is False


def test_verify_bad_input_exits_2(tmp_path: Path) -> None:
    images = make_set(tmp_path / "lfw", [2, 1])
    bad = write_pairs(tmp_path / "bad.txt", "1", ["P0 1 2"])
    result = run("verify", "--pairs", str(bad), "--images", str(images), "--pack", "fake")
    assert result.exit_code == 2 and "error VALIDATION_ERROR" in result.output and "line 3" in result.output
    missing = write_pairs(tmp_path / "m.txt", "1", ["P0 1 2", "P0 1 P9 1"])
    result = run("verify", "--pairs", str(missing), "--images", str(images), "--pack", "fake")
    assert result.exit_code == 2 and "missing" in result.output
    result = run("verify", "--pairs", str(missing), "--images", str(images), "--pack", "nope")
    assert result.exit_code == 2 and "unknown model pack" in result.output


# --- identify ------------------------------------------------------------------------------------


def test_identify_known_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 4 persons with 3 photos (one has no face in its gallery photo), 3 one-photo distractors.
    images = make_set(tmp_path / "ids", [3, 3, 3, 3, 1, 1, 1], no_face={(3, 1)})
    rng = np.random.default_rng(0)
    table = fit_calibration(rng.normal(1.41, 0.06, 50_000), rng.uniform(0.0, 0.5, 500))
    fake = facesearch.pipeline.build_pack  # the fake packs of the fixture above, now with this table
    monkeypatch.setattr(
        facesearch.pipeline, "build_pack", lambda name: dataclasses.replace(fake(name), calibration=table)
    )
    args = ["identify", "--images", str(images), "--pack", "fake", "--cache-dir", str(tmp_path / "c")]
    result = run(*args, "--json", "--workers", "0")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert (r["n_enrolled"], r["n_distractors"], r["n_mated_probes"], r["n_nonmated_probes"]) == (4, 3, 8, 3)
    assert r["n_gallery"] == 6 and r["gallery_failed_identities"] == ["P3"]
    assert r["mated_probes_without_gallery"] == 2
    # Every detected probe of an enrolled person is found first; P3's two probes are misses.
    assert r["rank1"] == pytest.approx(6 / 8) and r["rank5"] == pytest.approx(6 / 8)
    assert r["fnir_at_fpir_1e2"] == pytest.approx(2 / 8)
    # The service's thresholds for a gallery of 6 faces, and what they give here.
    fprs = [t["max_false_positive_rate"] for t in r["gallery_size_thresholds"]]
    assert fprs == [0.01, 0.001]
    first = r["gallery_size_thresholds"][0]
    assert first["similarity"] == pytest.approx(table.threshold_for_gallery(0.01, 6), abs=1e-6)
    assert first["distance"] == pytest.approx(table.distance_for_gallery(0.01, 6))
    assert first["observed_fpir"] == 0.0 and first["fnir"] == pytest.approx(2 / 8)
    text = run(*args, "--workers", "0")
    assert text.exit_code == 0, text.output
    assert "rank-1 75.00%, rank-5 75.00%" in text.output and "max_false_positive_rate 0.01" in text.output


def test_identify_with_mean_templates(tmp_path: Path) -> None:
    images = make_set(tmp_path / "ids", [4, 4, 2, 1, 1])
    args = ["identify", "--images", str(images), "--pack", "fake", "--cache-dir", str(tmp_path / "c")]
    result = run(*args, "--json", "--workers", "0", "--enrol-photos", "2", "--template", "mean")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["enrol_photos"] == 2 and r["template"] == "mean" and r["left_out_identities"] == 1
    assert (r["n_gallery"], r["n_gallery_identities"], r["n_mated_probes"]) == (6, 4, 4)
    assert r["rank1"] == 1.0
    assert run(*args, "--template", "median").exit_code == 2


# --- calibrate -----------------------------------------------------------------------------------


def test_calibrate_writes_a_checked_table(tmp_path: Path) -> None:
    images = make_set(tmp_path / "ids", [3] * 40)
    out = tmp_path / "table.json"
    args = ["calibrate", "--images", str(images), "--pack", "fake", "--cache-dir", str(tmp_path / "c")]
    result = run(*args, "--out", str(out), "--json", "--workers", "0")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["written"] == str(out) and r["pack"] == "fake"
    halves = [identity_half(f"P{i}") for i in range(40)]
    assert r["fit_identities"] == halves.count(0) and r["heldout_identities"] == halves.count(1)
    n_fit = 3 * halves.count(0)
    assert r["fit_pairs"]["genuine"] == 3 * halves.count(0)
    assert r["fit_pairs"]["impostor"] == n_fit * (n_fit - 1) // 2 - 3 * halves.count(0)
    assert [c["claimed_fmr"] for c in r["heldout_checks"]] == [0.01, 0.001, 0.0001, 1e-05]
    # The tail correction: a factor per claimed rate, at least 1, never smaller for a smaller rate.
    factors = [c["factor"] for c in r["tail_correction"]]
    assert len(factors) == 4 and factors == sorted(factors) and factors[0] >= 1.0
    assert [c["claimed_fmr"] for c in r["stranger_checks"]] == [0.01, 0.001, 0.0001, 1e-05]
    table = CalibrationTable.from_json(out.read_text())
    assert table.meta["default_threshold"] == r["default_threshold"]
    assert table.n_impostor == r["fit_pairs"]["impostor"]
    dry = run(*args, "--out", str(tmp_path / "dry.json"), "--dry-run", "--workers", "0")
    assert dry.exit_code == 0 and "not written" in dry.output and not (tmp_path / "dry.json").exists()
    assert "held-out check" in dry.output and "default threshold: similarity" in dry.output


def test_calibrate_needs_both_halves(tmp_path: Path) -> None:
    images = make_set(tmp_path / "ids", [1])
    result = run("calibrate", "--images", str(images), "--pack", "fake", "--dry-run", "--workers", "0",
                 "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert result.exit_code == 2 and "cannot calibrate" in result.output


# --- fitting helpers -----------------------------------------------------------------------------


def test_tail_correction_and_corrected_table() -> None:
    rng = np.random.default_rng(3)
    table = fit_calibration(rng.normal(1.0, 0.1, 200_000), rng.normal(0.4, 0.1, 1000))
    # Other pairs whose tail is twice as heavy at 1e-4 and 1e-5: observed / claimed 2 there.
    checks = [
        CalibrationCheck(1e-2, 0.0, 0.0, 0.9e-2, 900, 100_000, 0.0),
        CalibrationCheck(1e-3, 0.0, 0.0, 1.1e-3, 110, 100_000, 0.0),
        CalibrationCheck(1e-4, 0.0, 0.0, 2e-4, 20, 100_000, 0.0),
        CalibrationCheck(1e-5, 0.0, 0.0, 1e-5, 1, 100_000, 0.0),  # noisy: never below 1e-4's factor
    ]
    correction = tail_correction(checks)
    assert [f for _, _, f in correction] == pytest.approx([1.0, 1.1, 2.0, 2.0])
    fixed = corrected_table(table, correction)
    for fmr, factor in ((1e-2, 1.0), (1e-3, 1.1), (1e-4, 2.0), (1e-5, 2.0), (1e-7, 2.0)):
        d = table.distance_for_fmr(fmr)
        assert fixed.fmr(d) == pytest.approx(factor * fmr, rel=0.02)  # factors interpolated between knots
    assert fixed.fmr(table.distance_knots[-1]) == 1.0
    assert np.all(np.diff(fixed.fmr_knots) > 0)
    assert fixed.distance_for_fmr(1e-5) < table.distance_for_fmr(1e-5)  # stricter where it was wrong


def test_pair_distance_sets_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(37, 5))
    labels = rng.integers(0, 6, 37)
    gen, imp = pair_distance_sets(x, labels, chunk_size=8)
    d = pairwise_distances(x, x)
    iu = np.triu_indices(37, 1)
    same = labels[iu[0]] == labels[iu[1]]
    assert np.allclose(np.sort(gen), np.sort(d[iu][same]))
    assert np.allclose(np.sort(imp), np.sort(d[iu][~same]))
    _, sub = pair_distance_sets(x, labels, max_impostor_pairs=200, seed=1)
    assert 120 < sub.size < 280


def test_identity_half_is_a_stable_hash() -> None:
    assert identity_half("George_W_Bush") == identity_half("George_W_Bush")
    halves = [identity_half(f"person {i}") for i in range(2000)]
    assert 900 < sum(halves) < 1100


def test_check_calibration_counts_held_out_false_matches() -> None:
    rng = np.random.default_rng(4)
    table = fit_calibration(rng.normal(1.0, 0.1, 100_000), rng.normal(0.4, 0.1, 1000))
    held = rng.normal(1.0, 0.1, 100_000)
    checks = check_calibration(table, [0.0, 0.4, 5.0], held, claims=(1e-2,))
    c = checks[0]
    assert c.false_matches == int(np.sum(held <= c.distance)) and c.n_impostor == 100_000
    assert 0.5e-2 < c.observed_fmr < 2e-2 and c.similarity == pytest.approx(1 / 3, abs=1e-6)
    assert c.fnmr == pytest.approx(1 / 3)


def test_default_threshold_is_the_decade_nearest_the_balanced_optimum() -> None:
    rng = np.random.default_rng(5)
    # Genuine N(0.4, 0.1), impostor N(1.0, 0.1): FMR + FNMR is smallest half way, at 0.7, where the
    # FMR is Phi(-3) = 1.35e-3 -> the nearest decade is 1e-3 -> similarity 0.5.
    table = fit_calibration(rng.normal(1.0, 0.1, 400_000), rng.normal(0.4, 0.1, 20_000))
    assert balanced_optimum(table) == pytest.approx(0.7, abs=0.02)
    assert choose_default_threshold(table) == (0.5, 1e-3)


# --- the embedding cache -------------------------------------------------------------------------


def test_cache_round_trip_and_merge(tmp_path: Path) -> None:
    a = EmbeddingCache(tmp_path, "p", "f1")
    a.put("h1", CachedFace(np.ones(4, np.float32), np.arange(6.0)))
    a.put("h2", None)
    a.save()
    b = EmbeddingCache(tmp_path, "p", "f1")
    assert b.get("h2") is None and np.array_equal(b.get("h1").vector, np.ones(4))  # type: ignore[union-attr]
    b.put("h3", CachedFace(np.zeros(4, np.float32), np.zeros(6)))
    a.put("h4", None)
    b.save()
    a.save()  # merges h3, saved by the other writer meanwhile
    c = EmbeddingCache(tmp_path, "p", "f1")
    assert all(k in c for k in ("h1", "h2", "h3", "h4")) and len(c) == 4
    assert "h1" not in EmbeddingCache(tmp_path, "p", "f2")
    (tmp_path / "p-f3.npz").write_bytes(b"garbage")
    assert len(EmbeddingCache(tmp_path, "p", "f3")) == 0


def test_fingerprint_tracks_pack_and_settings() -> None:
    import dataclasses

    from facesearch.pipeline.dlib_pack import DlibDetector, DlibModels
    from facesearch.pipeline.packs import build_pack

    dlib = build_pack("dlib")
    assert pipeline_fingerprint(dlib) == pipeline_fingerprint(build_pack("dlib"))
    assert pipeline_fingerprint(dlib) != pipeline_fingerprint(build_pack("dlib-flip"))
    stricter = dataclasses.replace(dlib, detector=DlibDetector(DlibModels(), score_floor=0.5))
    assert pipeline_fingerprint(stricter) != pipeline_fingerprint(dlib)
    assert len(pipeline_fingerprint(dlib)) == 16 and int(pipeline_fingerprint(dlib), 16) >= 0


def test_photo_embedder_refuses_unknown_pack() -> None:
    from facesearch.eval.embedcache import PhotoEmbedder

    with pytest.raises(ValidationError):
        PhotoEmbedder("no-such-pack")


# --- open-set ------------------------------------------------------------------------------------


def test_open_set_counts_strangers_and_genuine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = make_set(tmp_path / "ids", [3] * 60)
    rng = np.random.default_rng(0)
    table = fit_calibration(rng.normal(1.41, 0.06, 50_000), rng.uniform(0.0, 0.5, 500))
    fake = facesearch.pipeline.build_pack
    monkeypatch.setattr(
        facesearch.pipeline, "build_pack", lambda name: dataclasses.replace(fake(name), calibration=table)
    )
    split = open_set_split({f"P{i}": sorted((images / f"P{i}").glob("*.jpg")) for i in range(60)})
    n_candidates, n_strangers = len(split.candidates), len(split.strangers)
    assert n_candidates == [identity_half(f"P{i}") for i in range(60)].count(0) and n_strangers > 3
    args = ["open-set", "--images", str(images), "--pack", "fake", "--galleries", "5,all"]
    result = run(*args, "--cache-dir", str(tmp_path / "c"), "--workers", "0", "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    small, full = r["galleries"]
    assert (small["persons"], full["persons"]) == (5, n_candidates)
    # The fake pack's strangers are far from everyone, its shades of one person close: on default
    # settings (the collection's 1% rate) nobody is named wrongly and every genuine probe is found.
    for g in (small, full):
        assert g["strangers"] == n_strangers and g["strangers_named"] == 0
        assert g["genuine"] == 2 * g["persons"] and g["genuine_found"] == g["genuine"]
        assert g["threshold_rule"] == {
            "kind": "max_false_positive_rate",
            "value": 0.01,
            "set_by": "collection",
        }
    assert full["threshold"] == pytest.approx(table.threshold_for_gallery(0.01, n_candidates))
    # With a cut-off of 0 every stranger is "named": the protocol counts what the service answers.
    loose = run(*args, "--settings", '{"default_threshold": 0.0}', "--cache-dir", str(tmp_path / "c"),
                "--workers", "0", "--json")  # fmt: skip
    assert json.loads(loose.stdout)["galleries"][0]["strangers_named"] == n_strangers
    text = run(*args, "--cache-dir", str(tmp_path / "c"), "--workers", "0")
    assert text.exit_code == 0 and f"0/{n_strangers} (0.00%)" in text.output
    assert run(*args[:-1], "5,x", "--workers", "0").exit_code == 2
    # Two photos enrolled per person: each gallery person has 2 faces and 1 genuine probe left.
    two = run(*args, "--enrol-photos", "2", "--cache-dir", str(tmp_path / "c"), "--workers", "0", "--json")
    assert two.exit_code == 0, two.output
    t = json.loads(two.stdout)
    assert t["enrol_photos"] == 2 and t["galleries"][0]["faces"] == 2 * t["galleries"][0]["persons"]
    assert all(g["genuine"] == g["persons"] and g["genuine_found"] == g["genuine"] for g in t["galleries"])
    assert run(*args, "--enrol-photos", "0", "--workers", "0").exit_code == 2


def test_calibrate_check_measures_the_shipped_table_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = make_set(tmp_path / "ids", [3] * 40)
    args = ["calibrate", "--check", "--images", str(images), "--pack", "fake", "--workers", "0"]
    cache = ["--cache-dir", str(tmp_path / "c")]
    missing = run(*args, *cache)
    assert missing.exit_code == 2 and "ships no calibration table" in missing.output
    rng = np.random.default_rng(0)
    table = fit_calibration(rng.normal(1.41, 0.06, 50_000), rng.uniform(0.0, 0.5, 500))
    fake = facesearch.pipeline.build_pack
    monkeypatch.setattr(
        facesearch.pipeline, "build_pack", lambda name: dataclasses.replace(fake(name), calibration=table)
    )
    before = sorted(p.name for p in tmp_path.rglob("*.json"))
    result = run(*args, *cache, "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["written"] is None and sorted(p.name for p in tmp_path.rglob("*.json")) == before
    assert [c["claimed_fmr"] for c in r["heldout_checks"]] == [0.01, 0.001, 0.0001, 1e-05]
    strangers = r["stranger_checks"]
    assert len(strangers) == 4 and all(c["n_impostor"] > 0 for c in strangers)
    assert [c["false_matches"] for c in strangers] == sorted(
        (c["false_matches"] for c in strangers), reverse=True
    )
    text = run(*args, *cache)
    assert "nothing written" in text.output and "pairs with strangers" in text.output
