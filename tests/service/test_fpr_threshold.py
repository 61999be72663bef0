"""`max_false_positive_rate`: a threshold from the calibration table and the searched gallery's size."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest

from facesearch.config import Settings
from facesearch.errors import ValidationError
from facesearch.eval.calibration import CalibrationTable, fit_calibration
from facesearch.service import FaceSearch
from facesearch.service.searcher import FMR_FLOOR
from fakes import face_photo, fake_pack, person_photo

ALICE, BOB, DORA = (10, 20), (30, 40), (70, 80)


@pytest.fixture(scope="module")
def table() -> CalibrationTable:
    # The fake pack's strangers sit at about sqrt(2) (random unit directions in 128-d), shades of
    # one person within 0.5 of each other.
    rng = np.random.default_rng(11)
    return fit_calibration(rng.normal(1.41, 0.06, 200_000), rng.uniform(0.0, 0.5, 2_000))


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, table: CalibrationTable) -> Iterator[FaceSearch]:
    tmp_path = tmp_path_factory.mktemp("fpr")
    pack = dataclasses.replace(
        fake_pack("calfake"),
        similarity=table.similarity,
        distance_for_similarity=table.distance_for_similarity,
        default_threshold=1 / 3,
        calibration=table,
    )
    service = FaceSearch(
        Settings(data_dir=tmp_path, default_pack="calfake"), packs={"calfake": pack, "fake": fake_pack()}
    )
    service.create_collection("small")
    service.create_person(
        "small", external_id="alice", images=[person_photo(*ALICE), person_photo(*ALICE, 0, 90)]
    )
    service.create_person("small", external_id="bob", images=[person_photo(*BOB)])
    service.create_collection("big")
    service.create_person("big", external_id="alice", images=[person_photo(*ALICE)])
    for i in range(150):
        service.create_person("big", external_id=f"p{i}", images=[person_photo(100 + i // 50, i % 50 + 100)])
    yield service
    service.close()


def test_bigger_gallery_gets_a_stricter_threshold(svc: FaceSearch, table: CalibrationTable) -> None:
    probe = person_photo(*ALICE, 2)
    small = svc.identify("small", probe, max_false_positive_rate=0.01)
    big = svc.identify("big", probe, max_false_positive_rate=0.01)
    assert (small.searched, big.searched) == (3, 151)
    assert big.threshold > small.threshold
    # The threshold reported is the one used: per-comparison FMR 1 - (1 - 0.01)^(1/N) on the scale.
    assert small.threshold == pytest.approx(table.threshold_for_gallery(0.01, 3))
    assert big.threshold == pytest.approx(table.threshold_for_gallery(0.01, 151))
    assert CalibrationTable.fmr_for_similarity(big.threshold) == pytest.approx(1 - 0.99 ** (1 / 151))
    for result in (small, big):
        assert [m.person.external_id for m in result.matches] == ["alice"]
        assert all(m.similarity >= result.threshold - 1e-6 for m in result.matches)
    # A stricter rate on the same gallery is stricter still.
    assert svc.identify("big", probe, max_false_positive_rate=0.001).threshold > big.threshold


def test_strangers_are_refused_and_the_distance_limit_is_exact(
    svc: FaceSearch, table: CalibrationTable
) -> None:
    assert svc.identify("big", person_photo(*DORA), max_false_positive_rate=0.01).matches == ()
    # rate / N below 1e-6: the similarity saturates at 1.0 but the distance limit stays exact, so an
    # identical photo (distance 0) still matches and a near stranger cannot.
    tiny = svc.identify("small", person_photo(*ALICE), max_false_positive_rate=1e-6)
    assert tiny.threshold == 1.0
    assert [m.person.external_id for m in tiny.matches] == ["alice"]
    assert tiny.matches[0].distance <= table.distance_for_gallery(1e-6, 3)


def test_searching_several_collections_counts_all_their_faces(
    svc: FaceSearch, table: CalibrationTable
) -> None:
    result = svc.search(["small", "big"], person_photo(*ALICE, 1), max_false_positive_rate=0.05)
    assert result.searched == 154
    assert result.threshold == pytest.approx(table.threshold_for_gallery(0.05, 154))


def test_identify_all_uses_the_collection_size(svc: FaceSearch, table: CalibrationTable) -> None:
    photo = face_photo(((*ALICE, 1), 20, 20, 100), ((*DORA, 0), 250, 150, 100))
    result = svc.identify_all("big", photo, max_false_positive_rate=0.01)
    assert result.threshold == pytest.approx(table.threshold_for_gallery(0.01, 151))
    assert [m.person.external_id for f in result.faces for m in f.matches] == ["alice"]
    assert len(result.unrecognized) == 1


def rule(result: object) -> tuple[str, float, str]:
    r = result.threshold_rule  # type: ignore[attr-defined]
    return (r.kind, r.value, r.set_by)


def test_without_a_cut_off_the_collections_rate_applies(svc: FaceSearch, table: CalibrationTable) -> None:
    # Gallery-aware by default: a 1% chance that a stranger matches anyone among the 151 faces.
    found = svc.identify("big", person_photo(*ALICE, 1))
    assert found.threshold == pytest.approx(table.threshold_for_gallery(0.01, 151))
    assert rule(found) == ("max_false_positive_rate", 0.01, "collection")
    assert found.threshold > 1 / 3  # stricter than the pack's per-comparison default
    everyone = svc.identify_all("big", person_photo(*ALICE, 1))
    assert rule(everyone) == ("max_false_positive_rate", 0.01, "collection")
    asked = svc.identify("big", person_photo(*ALICE, 1), threshold=0.9)
    assert asked.threshold == 0.9 and rule(asked) == ("threshold", 0.9, "request")


def test_collection_settings_choose_the_rule(svc: FaceSearch, table: CalibrationTable) -> None:
    svc.update_collection("big", settings={"max_false_positive_rate": 0.001})
    try:
        found = svc.identify("big", person_photo(*ALICE, 1))
        assert found.threshold == pytest.approx(table.threshold_for_gallery(0.001, 151))
        assert rule(found) == ("max_false_positive_rate", 0.001, "collection")
        # default_threshold is the explicit per-comparison choice: when set, it wins.
        svc.update_collection("big", settings={"default_threshold": 1 / 3})
        fixed = svc.identify("big", person_photo(*ALICE, 1))
        assert fixed.threshold == pytest.approx(1 / 3) and rule(fixed) == ("threshold", 1 / 3, "collection")
    finally:
        svc.update_collection("big", settings={"max_false_positive_rate": None, "default_threshold": None})
    assert rule(svc.identify("big", person_photo(*ALICE, 1))) == (
        "max_false_positive_rate",
        0.01,
        "collection",
    )


def test_a_pack_without_a_table_keeps_its_default_threshold(svc: FaceSearch) -> None:
    svc.create_collection("plain2", pack="fake")
    svc.create_person("plain2", external_id="alice", images=[person_photo(*ALICE)])
    found = svc.identify("plain2", person_photo(*ALICE, 1))
    assert found.threshold == 0.5 and rule(found) == ("threshold", 0.5, "pack")
    assert found.matches[0].false_match_rate is None and found.matches[0].expected_false_matches is None


def test_each_match_states_its_false_match_odds(svc: FaceSearch, table: CalibrationTable) -> None:
    found = svc.identify("big", person_photo(*ALICE, 1), top_k=3, threshold=0.0)
    assert len(found.matches) == 3
    for m in found.matches:
        assert m.false_match_rate == pytest.approx(max(table.fmr(m.distance), FMR_FLOOR), rel=2e-3)
        assert m.expected_false_matches == pytest.approx(m.false_match_rate * found.searched, rel=2e-3)
    odds = [m.false_match_rate for m in found.matches]
    assert odds == sorted(odds) and odds[0] < 1e-3 < odds[-1]  # alice, then strangers


@pytest.mark.parametrize("rate", [0, 0.0, 1, 1.0, -0.1, 1.5, True, "0.1", float("nan")])
def test_rate_out_of_range_is_refused(svc: FaceSearch, rate: object) -> None:
    with pytest.raises(ValidationError) as info:
        svc.identify("small", person_photo(*ALICE), max_false_positive_rate=rate)  # type: ignore[arg-type]
    assert info.value.details["field"] == "max_false_positive_rate"


def test_rate_and_threshold_are_exclusive(svc: FaceSearch) -> None:
    for call in (
        lambda: svc.identify("small", person_photo(*ALICE), threshold=0.5, max_false_positive_rate=0.01),
        lambda: svc.identify_all("small", person_photo(*ALICE), threshold=0.5, max_false_positive_rate=0.01),
    ):
        with pytest.raises(ValidationError, match="not both") as info:
            call()
        assert info.value.details["field"] == "max_false_positive_rate"


def test_pack_without_a_table_refuses_the_rate(svc: FaceSearch) -> None:
    svc.create_collection("plain", pack="fake")
    svc.create_person("plain", external_id="alice", images=[person_photo(*ALICE)])
    with pytest.raises(ValidationError, match="no calibration table") as info:
        svc.identify("plain", person_photo(*ALICE), max_false_positive_rate=0.01)
    assert info.value.details["field"] == "max_false_positive_rate"
    with pytest.raises(ValidationError, match="no calibration table"):
        svc.identify_all("plain", person_photo(*ALICE), max_false_positive_rate=0.01)
    assert svc.identify("plain", person_photo(*ALICE)).matches  # a plain threshold still works
