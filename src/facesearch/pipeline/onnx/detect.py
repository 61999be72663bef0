"""The RFB-320 face detector and the 68-point landmark model of the ONNX pack.

Detector: the image (or a tile of it) is resized to 320x240, RGB, (x - 127) / 128; the
model's ``boxes`` output is already decoded (corners in [0, 1] of its input), ``scores``
is (background, face). The JavaScript's prior-box decoding is computed but never used,
and its non-maximum suppression compares overlap to the *other* box's area; here it is
plain IoU suppression. Boxes are reported as the JavaScript does: a square whose side is
the detector box's height, centred on it (not clamped, so a face cut off by the image
edge still reads as such).

Landmarks: the square box, cut with black padding where it leaves the image, grey, 64x64,
pixel / 256; the 136 outputs are (x, y) pairs in [0, 1] of that square, in the iBUG
68-point order. ``FIVE_FROM_68`` maps them to the 5 points of the ``Landmarks`` contract
(dlib's order), so quality and pose code works on every pack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facesearch.domain import Box, Detection, Landmarks, RGBImage
from facesearch.pipeline.onnx.models import OnnxModels
from facesearch.pipeline.onnx.tensors import planes

INPUT_W, INPUT_H = 320, 240
LANDMARK_SIZE = 64
# Faces scoring below this are dropped. The JavaScript uses 0.65, but a dog's face in
# noface/ scored 0.68; every one of the 3,708 LFW faces scored 0.8 or more (0.1th
# percentile 0.977) and the lowest labelled face of groups/ 0.95.
SCORE_FLOOR = 0.8
NMS_IOU = 0.4
# upsample=n scans the whole image and a 2^n x 2^n grid of overlapping tiles. A tile only
# contributes faces too small for the whole-image scan (under TILE_MAX_FACE pixels of its
# 320x240 input): zoomed in, bodies, hands and a dog scored as faces up to 0.99.
TILE_OVERLAP = 0.25
TILE_MAX_FACE = 24
# Every face of a photo (``detect_every``): a pyramid of tile levels, each twice as fine as the
# one above, down to tiles where the smallest face wanted measures FACE_FLOOR pixels of the
# 320x240 input. Measured (60 LFW faces pasted on a photo, one scan): found 2/60 at 12 px,
# 27/60 at 14, 46/60 at 16, 57/60 at 20, 60/60 at 24.
FACE_FLOOR = 20
# Tiles are zoomed at most this much (a tile 120 px high fills the 240-px input): the smallest
# face of any photo is FACE_FLOOR / MAX_ZOOM = 10 pixels of the decoded image.
MAX_ZOOM = 2.0
# At most this many scans per photo (about 3 ms each on this machine's cores, so ~2 s): a
# larger photo with a smaller min_face_size gets a coarser finest level, and its answer says
# the smallest face it could find.
MAX_SCANS = 640
# A photo whose aspect is this far from the input's 4:3 is not scanned whole (squashed, its
# faces would be unrecognisable): its coarsest level is tiles the photo's height.
MAX_SQUASH = 2.0
# The ONNX square box -> the box dlib's HOG detector draws for the same face (median over
# 368 LFW faces): 0.80 times the side, centred 0.082 side lower (the horizontal offset,
# 0.03 side, is left out to keep the mapping mirror-symmetric).
HOG_SIDE = 0.80
HOG_DROP = 0.082
# iBUG 68: subject's left eye outer (45) and inner (42) corners, right eye outer (36) and
# inner (39) corners, nose base (33): dlib's 5-point order.
FIVE_FROM_68 = (45, 42, 36, 39, 33)

Points = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OnnxDetection(Detection):
    """A Detection that also carries the 68 landmarks it was computed from (image pixels)."""

    points68: Points = ()


def five_points(points68: np.ndarray) -> Landmarks:
    """The 5 points of the ``Landmarks`` contract from 68 iBUG points."""
    return Landmarks(tuple((float(points68[i, 0]), float(points68[i, 1])) for i in FIVE_FROM_68))


def square_box(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    """The square, as tall as the box, centred on it (corners)."""
    side = y2 - y1
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0


def hog_box(box: Box) -> Box:
    """The box dlib's HOG detector would draw for a face this detector boxed."""
    side = box.width * HOG_SIDE
    cx, cy = box.center
    cy += HOG_DROP * box.width
    return Box(round(cx - side / 2), round(cy - side / 2), max(1, round(side)), max(1, round(side)))


def box_from_hog(box: Box) -> Box:
    """The inverse of :func:`hog_box`: this detector's square for a HOG box."""
    side = box.width / HOG_SIDE
    cx, cy = box.center
    cy -= HOG_DROP * side
    return Box(round(cx - side / 2), round(cy - side / 2), max(1, round(side)), max(1, round(side)))


def crop_square(image: RGBImage, box: Box, size: int, *, grey: bool = False) -> np.ndarray:
    """``box`` cut from ``image`` (black outside it) and resized to size x size."""
    pil = Image.fromarray(image)
    region = pil.crop((box.left, box.top, box.right, box.bottom))
    if grey:
        region = region.convert("L")
    return np.asarray(region.resize((size, size), Image.Resampling.BILINEAR))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices kept by greedy IoU suppression, best score first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = np.asarray(order)
        ix = np.clip(
            np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None
        )
        iy = np.clip(
            np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None
        )
        inter = ix * iy
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o < iou]
    return keep


def _tiles(w: int, h: int, n: int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x1, y1, x2, y2) of a 2^n x 2^n grid."""
    if n <= 0:
        return []
    k = 2**n
    tw = w / (k - (k - 1) * TILE_OVERLAP)
    th = h / (k - (k - 1) * TILE_OVERLAP)
    out = []
    for row in range(k):
        for col in range(k):
            x1 = col * tw * (1 - TILE_OVERLAP)
            y1 = row * th * (1 - TILE_OVERLAP)
            out.append((round(x1), round(y1), min(w, round(x1 + tw)), min(h, round(y1 + th))))
    return out


@dataclass(frozen=True)
class TileLevel:
    """One level of the every-face pyramid: tiles (x1, y1, x2, y2) and the largest face (box
    height, pixels of the image) this level keeps; None: any. Bigger faces measure at least
    TILE_MAX_FACE pixels in the coarser level's scan, which finds them whole."""

    tiles: tuple[tuple[int, int, int, int], ...]
    max_face: float | None


def _spread(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with at least ``overlap``."""
    if tile >= length:
        return [0]
    n = math.ceil((length - tile * overlap) / (tile * (1 - overlap)))
    n = max(2, n)
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def pyramid(w: int, h: int, finest: float) -> list[TileLevel]:
    """The scans that find every face of a ``w`` x ``h`` image down to tiles ``finest`` pixels
    high, coarsest first: the whole image (unless its aspect is too far from 4:3), then levels
    of 4:3 tiles, each half the height of the one above, overlapping by TILE_OVERLAP (more than
    the largest face a tile level keeps, 2 x TILE_MAX_FACE of 240 pixels).

    A photo too long or too tall to scan whole starts with the largest 4:3 tiles that fit,
    overlapping by half, which keep faces of any size.
    """
    squash = (w / h) / (INPUT_W / INPUT_H)
    whole = 1 / MAX_SQUASH <= squash <= MAX_SQUASH
    top = min(float(h), w * INPUT_H / INPUT_W)  # the largest 4:3 tile that fits
    limit = 0.75 * h if whole else top  # a tile level nearly the image's size adds nothing
    heights = []
    t = float(finest)
    while t < limit:
        heights.append(t)
        t *= 2
    if not whole:
        heights.append(top)
    levels = [TileLevel(((0, 0, w, h),), None)] if whole else []
    coarser = float(h)  # the tile height of the level above
    for t in reversed(heights):
        tile_h = max(1, round(t))
        tile_w = min(w, max(1, round(t * INPUT_W / INPUT_H)))
        max_face = None if not levels else TILE_MAX_FACE * coarser / INPUT_H
        # Tiles overlap by more than the largest face they keep, so each face is whole in one.
        overlap = 0.5 if max_face is None else max(TILE_OVERLAP, max_face / tile_h + 0.05)
        tiles = tuple(
            (x, y, min(w, x + tile_w), min(h, y + tile_h))
            for y in _spread(h, tile_h, overlap)
            for x in _spread(w, tile_w, overlap)
        )
        levels.append(TileLevel(tiles, max_face))
        coarser = t
    return levels


def scan_count(levels: list[TileLevel]) -> int:
    return sum(len(level.tiles) for level in levels)


class RfbDetector:
    """Finds faces with the RFB-320 model and places 68 landmarks on each."""

    #: The smallest face, in pixels of an image scanned at 1:1 (a 240-px tile), found reliably.
    native_face = float(FACE_FLOOR)
    #: The largest image worth decoding for it: the pixel limit (MAX_SCANS bounds the cost).
    max_work_pixels = 10**9

    def __init__(
        self, models: OnnxModels, score_floor: float = SCORE_FLOOR, nms_iou: float = NMS_IOU
    ) -> None:
        self.models = models
        self._score_floor = score_floor
        self._nms_iou = nms_iou

    # --- raw boxes ------------------------------------------------------------------

    def _scan(self, image: RGBImage) -> tuple[np.ndarray, np.ndarray]:
        """Corner boxes (in ``image`` pixels) and scores above the floor."""
        h, w = image.shape[:2]
        resized = Image.fromarray(image).resize((INPUT_W, INPUT_H), Image.Resampling.BILINEAR)
        scores, boxes = self.models.run("detect", planes(np.asarray(resized), (0, 1, 2), 127.0, 128.0))
        face = scores[0, :, 1]
        keep = face >= self._score_floor
        found = boxes[0][keep] * np.array([w, h, w, h], dtype=np.float32)
        return found.astype(np.float64), face[keep].astype(np.float64)

    def boxes(self, image: RGBImage, *, upsample: int = 0) -> list[tuple[Box, float]]:
        """Face boxes (squares) and scores, best first; ``upsample`` adds tiled scans."""
        h, w = image.shape[:2]
        all_boxes, all_scores = [], []
        b, s = self._scan(image)
        all_boxes.append(b)
        all_scores.append(s)
        for tile in _tiles(w, h, upsample):
            b, s = self._scan_tile(image, tile)
            small = (b[:, 3] - b[:, 1]) * INPUT_H / h < TILE_MAX_FACE
            all_boxes.append(b[small])
            all_scores.append(s[small])
        return self._suppressed(all_boxes, all_scores)

    def _scan_tile(self, image: RGBImage, tile: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (in ``image`` pixels) and scores found in one tile, without the faces cut by an
        inner tile edge: those are found whole in a neighbouring tile."""
        h, w = image.shape[:2]
        x1, y1, x2, y2 = tile
        part = image if tile == (0, 0, w, h) else image[y1:y2, x1:x2]
        b, s = self._scan(np.ascontiguousarray(part))
        b = b + np.array([x1, y1, x1, y1], dtype=np.float64)
        margin = 2.0
        inner = (
            ((b[:, 0] <= x1 + margin) & (x1 > 0))
            | ((b[:, 1] <= y1 + margin) & (y1 > 0))
            | ((b[:, 2] >= x2 - margin) & (x2 < w))
            | ((b[:, 3] >= y2 - margin) & (y2 < h))
        )
        return b[~inner], s[~inner]

    def plan(self, w: int, h: int, min_face: float) -> tuple[list[TileLevel], float]:
        """The pyramid for faces down to ``min_face`` pixels of a ``w`` x ``h`` image, within
        MAX_SCANS, and the smallest face (pixels of the image) it finds."""
        finest = max(INPUT_H / MAX_ZOOM, min_face * INPUT_H / FACE_FLOOR)
        levels = pyramid(w, h, finest)
        while scan_count(levels) > MAX_SCANS:
            finest *= 1.25
            levels = pyramid(w, h, finest)
        return levels, finest * FACE_FLOOR / INPUT_H

    def every_box(self, image: RGBImage, *, min_face: float) -> tuple[list[tuple[Box, float]], float]:
        """Every face box down to ``min_face`` pixels (within MAX_SCANS), best first, and the
        smallest face size the scans could find."""
        h, w = image.shape[:2]
        levels, smallest = self.plan(w, h, min_face)
        all_boxes, all_scores = [], []
        for level in levels:
            for tile in level.tiles:
                b, s = self._scan_tile(image, tile)
                if level.max_face is not None:
                    kept = (b[:, 3] - b[:, 1]) < level.max_face
                    b, s = b[kept], s[kept]
                all_boxes.append(b)
                all_scores.append(s)
        return self._suppressed(all_boxes, all_scores), smallest

    def _suppressed(
        self, all_boxes: list[np.ndarray], all_scores: list[np.ndarray]
    ) -> list[tuple[Box, float]]:
        boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4))
        scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
        out: list[tuple[Box, float]] = []
        for i in nms(boxes, scores, self._nms_iou):
            left, top, right, _ = square_box(*boxes[i])
            side = max(1, round(right - left))
            out.append((Box(round(left), round(top), side, side), float(scores[i])))
        return out

    # --- landmarks ------------------------------------------------------------------

    def landmarks68(self, image: RGBImage, box: Box) -> np.ndarray:
        """68 (x, y) points in image pixels for a face in ``box`` (a detector square)."""
        grey = crop_square(image, box, LANDMARK_SIZE, grey=True).astype(np.float32) / 256.0
        (out,) = self.models.run("landmark", grey[None, None])
        points: np.ndarray = out[0].reshape(68, 2).astype(np.float64)
        points = points * np.array([box.width, box.height]) + np.array([box.left, box.top])
        return points

    def _detection(self, image: RGBImage, box: Box, score: float) -> OnnxDetection:
        points = self.landmarks68(image, box)
        return OnnxDetection(
            box=box,
            score=score,
            landmarks=five_points(points),
            points68=tuple((float(x), float(y)) for x, y in points),
        )

    # --- the Detector protocol ----------------------------------------------------------

    def detect(self, image: RGBImage, *, upsample: int) -> list[Detection]:
        """Every face with its box, score and landmarks."""
        return [self._detection(image, box, score) for box, score in self.boxes(image, upsample=upsample)]

    def detect_every(self, image: RGBImage, *, min_face: float) -> tuple[list[Detection], float]:
        """Every face down to ``min_face`` pixels, and the smallest face size it could find."""
        found, smallest = self.every_box(image, min_face=min_face)
        return [self._detection(image, box, score) for box, score in found], smallest

    def locate(self, image: RGBImage, box: Box) -> Detection:
        """Landmarks for a face whose box is known (crop mode, or a box found at another
        scale): the 68 points are placed on the square of ``box``; no detection runs."""
        side = max(box.width, box.height)
        cx, cy = box.center
        square = Box(round(cx - side / 2), round(cy - side / 2), side, side)
        return self._detection(image, square, 1.0)
