"""Pipeline rules that need no model: face choice, the every-face scan plan, quality maths."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.domain import Box, Detection, Landmarks
from facesearch.pipeline.dlib_pack import DlibDetector
from facesearch.pipeline.onnx.detect import (
    INPUT_H,
    MAX_SCANS,
    TILE_MAX_FACE,
    RfbDetector,
    pyramid,
    scan_count,
)
from facesearch.pipeline.quality import BasicQualityChecker, laplacian_variance, pose_from_landmarks
from facesearch.pipeline.runner import WORK_MAX_SIDE, choose_face, every_face_side

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


def test_every_face_decode_size() -> None:
    rfb = RfbDetector.__new__(RfbDetector)
    # 32-px faces of a 6000x4000 photo must measure the detector's 20 px: decoded at 3750 wide.
    assert every_face_side(rfb, 6000, 4000, 32) == 3750
    assert every_face_side(rfb, 1480, 832, 32) == WORK_MAX_SIDE  # never below today's work size
    assert every_face_side(rfb, 800, 600, 32) is None  # small photos: full size
    # A panorama keeps 240 of its 500 rows (20 / 200 would leave 50): 9600 wide.
    assert every_face_side(rfb, 20000, 500, 200) == 9600
    assert every_face_side(rfb, 20000, 500, 16) is None  # tiny faces: full size, tiles zoom in
    hog = DlibDetector.__new__(DlibDetector)
    side = every_face_side(hog, 8000, 5000, 32)  # 40 MP: HOG's pixel budget, not full size
    assert side is not None and side * side * 5 / 8 <= hog.max_work_pixels * 1.001


@pytest.mark.parametrize(
    ("w", "h"), [(1024, 683), (3750, 2500), (6000, 4000), (20000, 500), (500, 20000), (320, 240), (90, 2000)]
)
def test_pyramid_covers_the_image_at_every_level(w: int, h: int) -> None:
    for finest in (120.0, 240.0, 600.0):
        levels = pyramid(w, h, finest)
        assert levels and all(level.tiles for level in levels)
        for i, level in enumerate(levels):
            covered = np.zeros((h, w), dtype=bool)
            for x1, y1, x2, y2 in level.tiles:
                assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
                covered[y1:y2, x1:x2] = True
            assert covered.all(), (w, h, finest, i)
            if level.max_face is not None:
                # Neighbouring tiles overlap by more than the largest face the level keeps.
                xs = sorted({t[0] for t in level.tiles})
                ends = sorted({t[2] for t in level.tiles})
                if len(xs) > 1:
                    assert min(e - x for x, e in zip(xs[1:], ends[:-1], strict=False)) > level.max_face
        # Finer levels come later, and the finest reaches the faces asked for.
        heights = [max(t[3] - t[1] for t in level.tiles) for level in levels]
        assert heights == sorted(heights, reverse=True)
        assert heights[-1] <= max(finest, min(h, w * 0.75)) + 1


def test_pyramid_keeps_each_face_size_at_one_level() -> None:
    levels = pyramid(3750, 2500, 240.0)
    assert levels[0].tiles == ((0, 0, 3750, 2500),) and levels[0].max_face is None
    # A level keeps faces smaller than TILE_MAX_FACE pixels of the coarser level's input.
    assert levels[1].max_face == pytest.approx(TILE_MAX_FACE * 2500 / INPUT_H)
    tile_h = [levels[i].tiles[0][3] - levels[i].tiles[0][1] for i in range(1, len(levels))]
    for i in range(2, len(levels)):
        assert levels[i].max_face == pytest.approx(TILE_MAX_FACE * tile_h[i - 2] / INPUT_H, rel=0.01)
    # A panorama is not scanned whole (squashed 60x): its coarsest tiles keep any face.
    pano = pyramid(20000, 500, 240.0)
    assert pano[0].max_face is None and len(pano[0].tiles) > 1


def test_scan_budget_coarsens_the_finest_level_and_says_so() -> None:
    rfb = RfbDetector.__new__(RfbDetector)
    levels, smallest = rfb.plan(3750, 2500, 20.0)
    assert smallest == pytest.approx(20.0) and scan_count(levels) <= MAX_SCANS
    levels, smallest = rfb.plan(6300, 6300, 10.0)  # 40 MP at full size, 10-px faces: over budget
    assert scan_count(levels) <= MAX_SCANS and smallest > 10.0
    levels, smallest = rfb.plan(640, 480, 4.0)  # at most 2x zoom: 10 px is the floor
    assert smallest == pytest.approx(10.0)


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
