"""A deterministic fake model pack: faces are solid coloured squares on black.

The colour is the identity: (r, g) picks a person's base direction in 128-d space and
b adds a small per-photo variation, so two shades of the same (r, g) are the same
person (distance <= 0.3) and different (r, g) are strangers (distance ~1.4).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from facesearch.domain import Box, Detection, Landmarks, Quality, RGBImage
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.liveness import LivenessScores
from facesearch.pipeline.similarity import LogisticSimilarity

SIM = LogisticSimilarity(midpoint=0.6, scale=0.06)
SPOOF_B = 200  # the fake liveness judges faces whose blue is >= 200 not live
CLOSED_B = 150  # ... and those from 150 to 199 as having both eyes closed


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def colour_embedding(r: int, g: int, b: int) -> np.ndarray:
    """The embedding the fake pack gives a face of that colour."""
    return (_unit(r * 256 + g) + 0.05 * (b % 10) * _unit(100_000 + b)).astype(np.float32)


class FakeDetector:
    native_face = 1.0
    max_work_pixels = 10**9

    def detect_every(self, image: np.ndarray, *, min_face: float) -> tuple[list[Detection], float]:
        return self.detect(image, upsample=0), max(1.0, min_face)

    def detect(self, image: np.ndarray, *, upsample: int) -> list[Detection]:
        flat = image.reshape(-1, 3)
        colours = {tuple(int(x) for x in c) for c in np.unique(flat[flat.any(axis=1)], axis=0)}
        found = []
        for c in sorted(colours):
            ys, xs = np.nonzero(np.all(image == np.array(c, np.uint8), axis=2))
            box = Box(
                int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
            )
            found.append(self.locate(image, box))
        return found

    def locate(self, image: np.ndarray, box: Box) -> Detection:
        x, y, w, h = box.left, box.top, box.width, box.height
        pts = ((x + 0.7 * w, y + 0.4 * h), (x + 0.6 * w, y + 0.4 * h), (x + 0.3 * w, y + 0.4 * h),
               (x + 0.4 * w, y + 0.4 * h), (x + 0.5 * w, y + 0.65 * h))  # fmt: skip
        return Detection(box=box, score=1.0, landmarks=Landmarks(pts))


class FakeAligner:
    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        b = detection.box
        region = image[max(0, b.top) : b.bottom, max(0, b.left) : b.right]
        ys = np.linspace(0, region.shape[0] - 1, 150).astype(int)
        xs = np.linspace(0, region.shape[1] - 1, 150).astype(int)
        return np.ascontiguousarray(region[ys][:, xs])


class FakeEmbedder:
    dim = 128

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for chip in chips:
            r, g, b = (int(v) for v in chip[75, 75])
            rows.append(colour_embedding(r, g, b))
        return np.stack(rows) if rows else np.zeros((0, 128), np.float32)


class FakeQuality:
    def assess(self, image: np.ndarray, detection: Detection, chip: np.ndarray) -> Quality:
        h, w = image.shape[:2]
        b = detection.box
        border = min(b.left, b.top, w - b.right, h - b.bottom)
        return Quality(min(b.width, b.height), border, border < 0, 0.0, 0.0, 100.0, float(chip.mean()))


def fake_pack(name: str = "fake") -> ModelPack:
    """The fake pack, under the given name."""
    return ModelPack(
        name=name,
        detector=FakeDetector(),
        aligner=FakeAligner(),
        embedder=FakeEmbedder(),
        quality=FakeQuality(),
        similarity=SIM.similarity,
        distance_for_similarity=SIM.distance_for,
        default_threshold=0.5,
    )


def face_photo(
    *faces: tuple[tuple[int, int, int], int, int, int], size: tuple[int, int] = (400, 300)
) -> bytes:
    """A PNG with solid squares: each face is (colour, left, top, side)."""
    img = np.zeros((size[1], size[0], 3), np.uint8)
    for colour, left, top, side in faces:
        img[top : top + side, left : left + side] = colour
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def person_photo(r: int, g: int, b: int = 0, side: int = 100) -> bytes:
    """A photo with one centred face of that identity."""
    return face_photo(((r, g, b), 150, 100, side))


class FakeLiveness:
    """Judges a fake face by its colour (see SPOOF_B and CLOSED_B)."""

    def available(self) -> bool:
        return True

    def check(self, image: RGBImage, detection: Detection) -> LivenessScores:
        cx, cy = detection.box.center
        b = int(image[int(cy), int(cx), 2])
        closed = 0.99 if CLOSED_B <= b < SPOOF_B else 0.01
        return LivenessScores(
            live=0.0 if b >= SPOOF_B else 1.0,
            eyes_closed=(closed, closed),
            face_px=min(detection.box.width, detection.box.height),
        )
