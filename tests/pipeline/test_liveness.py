"""Liveness rules and their wiring through the service, with the fake pack (no models)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.config import Settings
from facesearch.domain import Box, Detection, Quality
from facesearch.errors import LivenessFailed, LivenessUnavailable
from facesearch.pipeline import FacePipeline
from facesearch.pipeline.liveness import (
    DEFAULT_THRESHOLDS,
    REASONS,
    LivenessScores,
    LivenessThresholds,
    OnnxLivenessChecker,
    context_box,
    liveness_reason,
)
from facesearch.pipeline.onnx.models import OnnxModels
from facesearch.service import FaceSearch
from fakes import CLOSED_B, SPOOF_B, FakeLiveness, face_photo, fake_pack, person_photo

ALICE = (10, 20)


def _quality(**changes: object) -> Quality:
    q = Quality(
        face_size=120, border_distance=60, cut_off=False, yaw=0.0, pitch=0.0, sharpness=40.0, brightness=120.0
    )
    return dataclasses.replace(q, **changes)  # type: ignore[arg-type]


def _scores(**changes: object) -> LivenessScores:
    s = LivenessScores(live=0.99, eyes_closed=(0.01, 0.02), face_px=120)
    return dataclasses.replace(s, **changes)  # type: ignore[arg-type]


# --- the rules ------------------------------------------------------------------------


def test_a_live_frontal_face_passes() -> None:
    assert liveness_reason(_scores(), _quality()) is None


@pytest.mark.parametrize(
    ("scores", "quality", "reason"),
    [
        ({"live": 0.1}, {}, "FACE_NOT_LIVE"),
        ({"eyes_closed": (0.95, 0.99)}, {}, "EYES_CLOSED"),
        ({}, {"yaw": 50.0}, "FACE_ANGLE_TOO_LARGE"),
        ({}, {"pitch": -40.0}, "FACE_ANGLE_TOO_LARGE"),
        ({"face_px": 30}, {}, "FACE_TOO_SMALL"),
        ({}, {"border_distance": 2}, "FACE_CLOSE_TO_BORDER"),
        ({}, {"border_distance": -5, "cut_off": True}, "FACE_CLOSE_TO_BORDER"),
        ({"other_faces": (0.9,)}, {}, "TOO_MANY_FACES"),
    ],
)
def test_each_reason(scores: dict[str, object], quality: dict[str, object], reason: str) -> None:
    assert reason in REASONS
    assert liveness_reason(_scores(**scores), _quality(**quality)) == reason


def test_one_closed_eye_is_not_closed_eyes() -> None:
    assert liveness_reason(_scores(eyes_closed=(0.99, 0.1)), _quality()) is None


def test_small_background_faces_are_allowed_and_rivals_only_count_for_one_face() -> None:
    assert liveness_reason(_scores(other_faces=(0.3, 0.5)), _quality()) is None
    assert liveness_reason(_scores(other_faces=(1.2,)), _quality(), single=False) is None


def test_geometry_is_judged_before_the_models() -> None:
    # A tiny, turned face is refused for its geometry, whatever the models said.
    assert liveness_reason(_scores(live=0.0, face_px=20), _quality(yaw=60.0)) == "FACE_TOO_SMALL"


def test_thresholds_live_in_one_place() -> None:
    assert isinstance(DEFAULT_THRESHOLDS, LivenessThresholds)
    strict = dataclasses.replace(DEFAULT_THRESHOLDS, min_live_score=0.999)
    assert liveness_reason(_scores(live=0.99), _quality(), thresholds=strict) == "FACE_NOT_LIVE"
    loose = dataclasses.replace(DEFAULT_THRESHOLDS, max_abs_yaw=90.0)
    assert liveness_reason(_scores(), _quality(yaw=50.0), thresholds=loose) is None


def test_context_box_stays_inside_the_image() -> None:
    box = context_box(Box(10, 10, 50, 50), 300, 200)
    assert box.left >= 0 and box.top >= 0 and box.right <= 300 and box.bottom <= 200
    assert box.width == box.height == 135  # 50 x 2.7
    small = context_box(Box(100, 50, 100, 100), 250, 250)
    assert small.width <= 249  # shrunk to fit, as the JavaScript does


# --- through the pipeline and the service -----------------------------------------------


def _service(tmp_path: Path, liveness: object) -> FaceSearch:
    pack = dataclasses.replace(fake_pack(), liveness=liveness)
    return FaceSearch(Settings(data_dir=tmp_path, default_pack="fake"), packs={"fake": pack})


@pytest.fixture
def live_svc(tmp_path: Path) -> Iterator[FaceSearch]:
    svc = _service(tmp_path, FakeLiveness())
    svc.create_collection("staff")
    svc.create_person("staff", external_id="alice", images=[person_photo(*ALICE)])
    yield svc
    svc.close()


def test_live_face_is_identified_with_liveness_timing(live_svc: FaceSearch) -> None:
    result = live_svc.identify("staff", person_photo(*ALICE, 1), check_liveness=True)
    assert [m.person.external_id for m in result.matches] == ["alice"]
    assert "liveness_ms" in result.timings
    plain = live_svc.identify("staff", person_photo(*ALICE, 1))
    assert "liveness_ms" not in plain.timings


@pytest.mark.parametrize(
    ("photo", "reason"),
    [
        (person_photo(*ALICE, SPOOF_B), "FACE_NOT_LIVE"),
        (person_photo(*ALICE, CLOSED_B), "EYES_CLOSED"),
        (face_photo(((*ALICE, 1), 150, 100, 30)), "FACE_TOO_SMALL"),
        (face_photo(((*ALICE, 1), 0, 100, 100)), "FACE_CLOSE_TO_BORDER"),
        (face_photo(((*ALICE, 1), 40, 100, 100), ((90, 90, 1), 250, 100, 100)), "TOO_MANY_FACES"),
    ],
)
def test_identify_refuses_faces_that_are_not_live(live_svc: FaceSearch, photo: bytes, reason: str) -> None:
    with pytest.raises(LivenessFailed) as info:
        live_svc.identify("staff", photo, check_liveness=True)
    assert info.value.code == "LIVENESS_FAILED"
    assert info.value.details["reason"] == reason
    assert info.value.details["faces"][0]["reason"] == reason
    # Without the check the same photo is searched as usual.
    live_svc.identify("staff", photo)


def test_identify_all_and_detect_judge_every_face(live_svc: FaceSearch) -> None:
    two_live = face_photo(((*ALICE, 1), 40, 100, 100), ((90, 90, 1), 250, 100, 100))
    assert len(live_svc.identify_all("staff", two_live, check_liveness=True).faces) == 1
    found = live_svc.detect(two_live, check_liveness=True)
    assert len(found.faces) == 2 and "liveness_ms" in found.timings
    one_spoof = face_photo(((*ALICE, 1), 40, 100, 100), ((90, 90, SPOOF_B), 250, 100, 100))
    for call in (live_svc.identify_all, lambda _c, img, **kw: live_svc.detect(img, **kw)):
        with pytest.raises(LivenessFailed) as info:
            call("staff", one_spoof, check_liveness=True)
        assert info.value.details["reason"] == "FACE_NOT_LIVE" and len(info.value.details["faces"]) == 1


def test_enrolment_checks_liveness_and_stores_nothing_on_failure(live_svc: FaceSearch) -> None:
    with pytest.raises(LivenessFailed) as info:
        live_svc.create_person(
            "staff",
            external_id="bob",
            images=[person_photo(30, 40), person_photo(30, 40, SPOOF_B)],
            check_liveness=True,
        )
    assert info.value.details["reason"] == "FACE_NOT_LIVE" and info.value.details["image"] == 1
    persons, _ = live_svc.list_persons("staff")
    assert [p.external_id for p in persons] == ["alice"]
    bob = live_svc.create_person(
        "staff", external_id="bob", images=[person_photo(30, 40)], check_liveness=True
    )
    with pytest.raises(LivenessFailed):
        live_svc.add_face("staff", bob.id, person_photo(30, 40, CLOSED_B), check_liveness=True)
    live_svc.add_face("staff", bob.id, person_photo(30, 40, 3), check_liveness=True)


def test_liveness_unavailable_without_a_checker(tmp_path: Path) -> None:
    svc = _service(tmp_path, None)
    try:
        svc.create_collection("staff")
        photo = person_photo(*ALICE)
        calls = [
            lambda: svc.identify("staff", photo, check_liveness=True),
            lambda: svc.identify_all("staff", photo, check_liveness=True),
            lambda: svc.detect(photo, check_liveness=True),
            lambda: svc.create_person("staff", external_id="a", images=[photo], check_liveness=True),
        ]
        for call in calls:
            with pytest.raises(LivenessUnavailable) as info:
                call()
            assert info.value.code == "LIVENESS_UNAVAILABLE"
        assert svc.identify("staff", photo).matches == ()
    finally:
        svc.close()


def test_liveness_unavailable_when_the_models_are_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker = OnnxLivenessChecker(OnnxModels(tmp_path))
    assert not checker.available()
    pipeline = FacePipeline(dataclasses.replace(fake_pack(), liveness=checker))
    image = np.zeros((300, 400, 3), np.uint8)
    image[100:200, 150:250] = (10, 20, 0)
    with pytest.raises(LivenessUnavailable) as info:
        pipeline.analyse(image, liveness=True)
    assert "facesearch models install onnx" in info.value.message
    assert pipeline.analyse(image).faces  # without liveness nothing changes
    with pytest.raises(LivenessUnavailable):
        checker.check(
            image,
            Detection(Box(150, 100, 100, 100), 1.0, pipeline.analyse(image).faces[0].detection.landmarks),
        )
    # The dlib pack carries a liveness checker that reports the missing models.
    from facesearch.pipeline import build_pack

    monkeypatch.setenv("FACESEARCH_MODELS_DIR", str(tmp_path))
    dlib = build_pack("dlib")
    assert dlib.liveness is not None and not dlib.liveness.available()
