"""Pipeline rules that need no model: face choice, upsampling policy, quality maths."""

from __future__ import annotations

import numpy as np

from facesearch.domain import Box, Detection, Landmarks
from facesearch.pipeline.quality import BasicQualityChecker, laplacian_variance, pose_from_landmarks
from facesearch.pipeline.runner import choose_face, upsample_for

FRONTAL = ((70.0, 50.0), (60.0, 50.0), (30.0, 50.0), (40.0, 50.0), (50.0, 69.0))


def _det(left: int, top: int, side: int) -> Detection:
    return Detection(Box(left, top, side, side), 1.0, Landmarks(FRONTAL))


def test_central_prefers_face_near_centre_largest_prefers_size() -> None:
    big_corner = _det(0, 0, 200)
    small_centre = _det(480, 330, 40)
    dets = [big_corner, small_centre]
    assert choose_face(dets, 1000, 700, "central") == 1
    assert choose_face(dets, 1000, 700, "largest") == 0


def test_central_weighs_size() -> None:
    # A big face slightly off-centre beats a tiny face a bit nearer the centre.
    big = _det(380, 250, 200)  # centre (480, 350): 20 px off, 200 px face
    tiny = _det(495, 345, 10)  # centre (500, 350): on centre... 0 px off
    tiny_off = _det(505, 345, 10)  # 10 px off with a 10 px face = 1 face width
    assert choose_face([big, tiny_off], 1000, 700, "central") == 0
    assert choose_face([big, tiny], 1000, 700, "central") == 1


def test_upsample_policy() -> None:
    assert upsample_for(40, 1.0) == 1  # 40 px faces need one upsampling to reach HOG's 80 px window
    assert upsample_for(100, 1.0) == 0
    assert upsample_for(100, 0.5) == 1  # downscaled work image
    assert upsample_for(10, 1.0) == 1  # capped


def test_pose_signs() -> None:
    yaw, pitch = pose_from_landmarks(FRONTAL)
    assert abs(yaw) < 1
    turned = FRONTAL[:4] + ((62.0, 69.0),)
    mirrored = tuple((100 - x, y) for x, y in turned)
    y1, _ = pose_from_landmarks(turned)
    y2, _ = pose_from_landmarks(mirrored)
    assert y1 > 15 and y2 < -15
    assert abs(pitch) < 15


def test_sharpness_drops_when_blurred() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (150, 150)).astype(np.float32)
    blurred = (sharp[:-2, :-2] + sharp[1:-1, 1:-1] + sharp[2:, 2:] + sharp[:-2, 2:] + sharp[2:, :-2]) / 5
    assert laplacian_variance(blurred) < laplacian_variance(sharp) / 3


def test_quality_border_and_cut_off() -> None:
    image = np.full((200, 300, 3), 128, np.uint8)
    chip = np.full((150, 150, 3), 100, np.uint8)
    inside = BasicQualityChecker().assess(image, _det(50, 40, 100), chip)
    assert inside.border_distance == 40 and not inside.cut_off
    assert inside.face_size == 100 and abs(inside.brightness - 100) < 1
    outside = BasicQualityChecker().assess(image, _det(-10, 40, 100), chip)
    assert outside.cut_off and outside.border_distance == -10
