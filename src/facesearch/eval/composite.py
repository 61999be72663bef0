"""Large test photos made from real faces: LFW photos pasted onto a real background.

Used by ``bench/large_photos.py`` and the real-model tests of every-face detection on
photos far bigger than the 1024-pixel work size (a 6000x4000 group photo, a 20000x500
panorama). Each LFW photo is 250x250 with its face in the middle; it is scaled so that the
face measures about ``face_px`` pixels, and pasted whole at a known place.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# The middle of an LFW photo: the detector's face box is about 0.45 of its 250 pixels.
LFW_FACE_FRACTION = 0.45


@dataclass(frozen=True)
class Composite:
    """A JPEG and where its faces are (centre x, centre y, face size in pixels)."""

    jpeg: bytes
    width: int
    height: int
    faces: tuple[tuple[float, float, float], ...]

    def found(self, boxes: Sequence[tuple[float, float, float, float]]) -> tuple[int, int]:
        """(faces found, boxes that are no pasted face) for detected (left, top, w, h) boxes:
        a face is found when a box's centre lies within half a face of its centre."""
        hit = [False] * len(self.faces)
        extra = 0
        for left, top, w, h in boxes:
            cx, cy = left + w / 2, top + h / 2
            near = [
                i
                for i, (fx, fy, size) in enumerate(self.faces)
                if abs(cx - fx) < size / 2 and abs(cy - fy) < size / 2
            ]
            if near:
                hit[near[0]] = True
            else:
                extra += 1
        return sum(hit), extra


def compose(
    background: Path,
    faces: Sequence[Path],
    width: int,
    height: int,
    face_px: float,
    *,
    quality: int = 90,
) -> Composite:
    """``faces`` spread evenly along the middle row of ``background`` resized to ``width`` x
    ``height``, each with its face about ``face_px`` pixels."""
    with Image.open(background) as bg:
        canvas = bg.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    placed = []
    n = len(faces)
    for i, path in enumerate(faces):
        with Image.open(path) as im:
            photo = im.convert("RGB")
        side = max(8, round(face_px / LFW_FACE_FRACTION))
        side = min(side, height)
        photo = photo.resize((side, side), Image.Resampling.LANCZOS)
        cx = (i + 0.5) * width / n
        cy = height / 2
        left, top = round(cx - side / 2), round(cy - side / 2)
        canvas.paste(photo, (left, top))
        placed.append((left + side / 2, top + side / 2, side * LFW_FACE_FRACTION))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=quality)
    return Composite(out.getvalue(), width, height, tuple(placed))


def pick_faces(lfw: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` photos of different LFW people, the same ones for the same seed."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(people), size=min(n, len(people)), replace=False)
    return [sorted(people[int(i)].glob("*.jpg"))[0] for i in chosen]
