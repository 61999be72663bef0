"""Liveness on genuine photos and on simulated presentation attacks made from them.

Genuine: the photos of the LFW development pairs (``lfw/pairsDevTest.txt``, 1,549 photos)
as they are. Attacks, made from each genuine photo with a seeded random generator:

- print: the photo printed on paper and photographed: a white paper border, lowered
  contrast and a warm paper tint, a rotated halftone screen, the sheet slightly rotated
  on a background, camera blur and noise, then JPEG quality 25-40;
- screen: the photo shown on a phone or monitor and photographed: a black bezel, a
  pixel grid, a moire pattern (two gratings of nearly equal period beating), a cold
  backlight tint, a glare spot, then JPEG quality 50-70.

Every image goes through the ONNX detector (the central face), then the liveness checker
and the decision of ``pipeline/liveness.py``. The photos are split in two halves (even and
odd positions in sorted order): ``--tune`` prints, for both channel orders fed to the
liveness model, the separation (ROC AUC of the live score, genuine vs attack) and the
live-score threshold that keeps 95% of genuine photos of the even half; the figures are
then reported on the odd half (held out) and on all photos. An image in which no face is
found counts as refused (``FACE_NOT_DETECTED``); the reasons are listed per kind.

    .venv/bin/python bench/liveness.py [--faces DIR] [--step N] [--tune] [--json OUT]
    .venv/bin/python bench/liveness.py --save-examples DIR   # a few attack images to look at

This measures simulated attacks only: it is not a certification of presentation-attack
detection, and real prints, screens and masks may behave differently.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facesearch.domain import Detection
from facesearch.errors import NoFaceDetected
from facesearch.imaging import decode_image
from facesearch.pipeline.liveness import (
    DEFAULT_THRESHOLDS,
    LivenessScores,
    OnnxLivenessChecker,
    liveness_input,
    liveness_reason,
)
from facesearch.pipeline.onnx.detect import RfbDetector
from facesearch.pipeline.onnx.models import OnnxModels
from facesearch.pipeline.quality import BasicQualityChecker
from facesearch.pipeline.runner import choose_face

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = Path(os.environ.get("FACESEARCH_FACES_DIR", REPO.parent / "shared" / "faces"))
KINDS = ("genuine", "print", "screen")
GENUINE_PASS_TARGET = 0.95

# --- attack simulation ---------------------------------------------------------------


def _rng(name: str, kind: str) -> np.random.Generator:
    seed = int.from_bytes(f"{kind}:{name}".encode()[-16:].ljust(16, b"\0"), "little") % (2**63)
    return np.random.default_rng(seed)


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A plain indoor-looking background: a soft colour gradient with noise."""
    base = rng.uniform(60, 200, size=3)
    tilt = rng.uniform(-40, 40, size=3)
    ys = np.linspace(0, 1, h)[:, None, None]
    xs = np.linspace(0, 1, w)[None, :, None]
    direction = rng.uniform(0, 1)
    grad = base + tilt * (direction * ys + (1 - direction) * xs)
    noise = rng.normal(0, 6, size=(h, w, 3))
    return Image.fromarray(np.clip(grad + noise, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _place(
    rng: np.random.Generator, sheet: Image.Image, w: int, h: int, fill: float
) -> tuple[Image.Image, Image.Image]:
    """``sheet`` scaled to cover ``fill`` of the frame's height, slightly rotated, on a
    background; the frame and the mask of where the sheet is."""
    scale = fill * h / sheet.height
    sheet = sheet.resize((max(1, round(sheet.width * scale)), max(1, round(sheet.height * scale))))
    angle = float(rng.uniform(-6, 6))
    rotated = sheet.convert("RGBA").rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    frame = _background(rng, w, h)
    x = (w - rotated.width) // 2 + int(rng.integers(-w // 20, w // 20 + 1))
    y = (h - rotated.height) // 2 + int(rng.integers(-h // 20, h // 20 + 1))
    frame.paste(rotated, (x, y), rotated)
    mask = Image.new("L", (w, h), 0)
    mask.paste(rotated.getchannel("A"), (x, y))
    return frame, mask


def _camera(rng: np.random.Generator, frame: Image.Image, blur: float, noise: float) -> Image.Image:
    frame = frame.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(frame, dtype=np.float32) + rng.normal(0, noise, size=(frame.height, frame.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def print_attack(photo: Image.Image, rng: np.random.Generator) -> bytes:
    """The photo printed on paper (halftone, paper tint, white border) and photographed."""
    w, h = photo.size
    big = photo.resize((w * 2, h * 2), Image.Resampling.BICUBIC)
    arr = np.asarray(big, dtype=np.float32) / 255.0
    # Halftone: each ink channel thresholded against a rotated dot screen.
    period = float(rng.uniform(3.0, 4.5))
    ys, xs = np.mgrid[0 : h * 2, 0 : w * 2].astype(np.float32)
    ink = 1.0 - arr
    out = np.empty_like(arr)
    for c, angle in enumerate((15.0, 75.0, 0.0)):
        a = math.radians(angle + float(rng.uniform(-3, 3)))
        u = (xs * math.cos(a) + ys * math.sin(a)) * 2 * math.pi / period
        v = (-xs * math.sin(a) + ys * math.cos(a)) * 2 * math.pi / period
        screen = (np.cos(u) * np.cos(v) + 1.0) / 2.0  # dots in [0, 1]
        dots = (ink[..., c] > screen).astype(np.float32)
        out[..., c] = 1.0 - (0.55 * dots + 0.45 * ink[..., c])  # part dot, part continuous tone
    paper = np.array([0.96, 0.94, 0.88]) * float(rng.uniform(0.85, 1.0))
    out = 0.10 + 0.80 * out  # ink never black, paper never white
    printed = Image.fromarray(np.clip(out * paper * 255, 0, 255).astype(np.uint8))
    printed = printed.resize((w, h), Image.Resampling.BILINEAR)
    border = max(4, round(w * float(rng.uniform(0.06, 0.12))))
    sheet = Image.new("RGB", (w + 2 * border, h + 2 * border), tuple(int(v * 255) for v in paper))
    sheet.paste(printed, (border, border))
    frame, _ = _place(rng, sheet, w, h, fill=float(rng.uniform(0.82, 0.95)))
    frame = _camera(rng, frame, blur=float(rng.uniform(0.5, 1.0)), noise=float(rng.uniform(2, 5)))
    return _jpeg(frame, int(rng.integers(25, 41)))


def screen_attack(photo: Image.Image, rng: np.random.Generator) -> bytes:
    """The photo shown on a screen (bezel, pixel grid, moire, glare) and photographed."""
    w, h = photo.size
    arr = np.asarray(photo, dtype=np.float32) / 255.0
    arr = arr ** float(rng.uniform(0.75, 0.9))  # a bright backlit display
    screen = Image.fromarray(
        np.clip((arr * np.array([0.93, 1.0, 1.08]) + 0.04) * 255, 0, 255).astype(np.uint8)
    )
    bezel = max(4, round(w * float(rng.uniform(0.05, 0.10))))
    device = Image.new("RGB", (w + 2 * bezel, h + 2 * bezel), (12, 12, 14))
    device.paste(screen, (bezel, bezel))
    frame, mask = _place(rng, device, w, h, fill=float(rng.uniform(0.85, 0.97)))
    # In the photographed frame, on the glass only: the screen's pixel grid (about 3 camera
    # pixels) and moire, two gratings of close period and angle beating into broad bands.
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    pitch = float(rng.uniform(2.6, 3.4))
    a0 = math.radians(float(rng.uniform(-6, 6)))
    gx = xs * math.cos(a0) + ys * math.sin(a0)
    gy = -xs * math.sin(a0) + ys * math.cos(a0)
    grid = 1.0 - 0.18 * ((np.cos(2 * np.pi * gx / pitch) + 1) / 2) * (
        (np.cos(2 * np.pi * gy / pitch) + 1) / 2
    )
    a1 = math.radians(float(rng.uniform(0, 180)))
    a2 = a1 + math.radians(float(rng.uniform(3, 10)))
    p1 = float(rng.uniform(2.8, 3.6))
    p2 = p1 * float(rng.uniform(1.03, 1.10))
    g1 = np.cos(2 * np.pi * (xs * math.cos(a1) + ys * math.sin(a1)) / p1)
    g2 = np.cos(2 * np.pi * (xs * math.cos(a2) + ys * math.sin(a2)) / p2)
    beat = np.asarray(
        Image.fromarray(((g1 * g2 + 1) * 127.5).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2.0)),
        dtype=np.float32,
    )
    moire = (beat / 255.0 - 0.5) * 2.0 * float(rng.uniform(0.12, 0.22))
    tint = np.array([1.0, 0.5, 1.3], dtype=np.float32)
    glass = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    pixels = np.asarray(frame, dtype=np.float32) / 255.0
    shown = pixels * grid[..., None] * (1.0 + moire[..., None] * tint)
    pixels = glass * shown + (1.0 - glass) * pixels
    frame = Image.fromarray(np.clip(pixels * 255, 0, 255).astype(np.uint8))
    # Glare: a soft bright ellipse somewhere on the glass.
    glare = Image.new("L", (w, h), 0)
    cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
    rx, ry = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 10, h // 4))
    ImageDraw.Draw(glare).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=int(rng.integers(90, 160)))
    glare = glare.filter(ImageFilter.GaussianBlur(max(rx, ry) / 2))
    glare = Image.fromarray((np.asarray(glare, dtype=np.float32) * glass[..., 0]).astype(np.uint8))
    frame = Image.composite(Image.new("RGB", (w, h), (255, 255, 255)), frame, glare)
    frame = _camera(rng, frame, blur=float(rng.uniform(0.3, 0.6)), noise=float(rng.uniform(2, 4)))
    return _jpeg(frame, int(rng.integers(50, 71)))


def make_image(path: Path, kind: str) -> bytes:
    """The genuine photo's bytes, or a simulated attack made from it."""
    data = path.read_bytes()
    if kind == "genuine":
        return data
    photo = Image.open(io.BytesIO(data)).convert("RGB")
    rng = _rng(path.name, kind)
    return print_attack(photo, rng) if kind == "print" else screen_attack(photo, rng)


# --- measurement ----------------------------------------------------------------------


def lfw_dev_photos(faces: Path) -> list[Path]:
    """The photos of the LFW development pairs, sorted."""
    lfw = faces / "lfw"
    names: set[Path] = set()
    for line in (lfw / "pairsDevTest.txt").read_text().splitlines()[1:]:
        p = line.split()
        if len(p) == 3:
            names |= {lfw / p[0] / f"{p[0]}_{int(p[1]):04d}.jpg", lfw / p[0] / f"{p[0]}_{int(p[2]):04d}.jpg"}
        elif len(p) == 4:
            names |= {lfw / p[0] / f"{p[0]}_{int(p[1]):04d}.jpg", lfw / p[2] / f"{p[2]}_{int(p[3]):04d}.jpg"}
    return sorted(names)


class Measurer:
    """Detector + liveness models + quality, as the onnx pack runs them."""

    def __init__(self, models: OnnxModels) -> None:
        self.models = models
        self.detector = RfbDetector(models)
        self.checker = OnnxLivenessChecker(models, self.detector)
        self.quality = BasicQualityChecker()

    def measure(self, data: bytes) -> dict[str, Any] | None:
        """Scores, both channel orders' live score and the decision; None when no face."""
        pixels = decode_image(data, target_max_side=1024).pixels
        h, w = pixels.shape[:2]
        found: list[Detection] = self.detector.detect(pixels, upsample=0)
        if not found:
            found = self.detector.detect(pixels, upsample=1)
        if not found:
            return None
        i = choose_face(found, w, h, "central")
        face = found[i]
        side = min(face.box.width, face.box.height)
        others = tuple(min(d.box.width, d.box.height) / side for j, d in enumerate(found) if j != i)
        scores = replace(self.checker.check(pixels, face), other_faces=others)
        quality = self.quality.assess(pixels, face, pixels[:1, :1])
        live = {}
        for order in ("rgb", "bgr"):
            (logits,) = self.models.run("liveness", liveness_input(pixels, face.box, order))
            e = np.exp(logits[0] - logits[0].max())
            live[order] = float(e[0] / e.sum())
        return {"scores": scores, "quality": quality, "live": live}


def _raw(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"face": False}
    q = row["quality"]
    return {"face": True, **row["scores"].to_dict(), "live_rgb": row["live"]["rgb"],
            "live_bgr": row["live"]["bgr"], "yaw": q.yaw, "pitch": q.pitch,
            "border": q.border_distance, "cut_off": q.cut_off, "face_size": q.face_size}  # fmt: skip


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting half."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    both = np.concatenate([pos, neg])
    ranks = both.argsort().argsort().astype(np.float64) + 1
    # average ranks of ties
    order = np.argsort(both)
    sorted_vals = both[order]
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        if j > i:
            ranks[order[i : j + 1]] = (i + j + 2) / 2.0
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def decide(row: dict[str, Any], order: str, min_live: float) -> str | None:
    scores: LivenessScores = replace(row["scores"], live=row["live"][order])
    t = replace(DEFAULT_THRESHOLDS, min_live_score=min_live)
    return liveness_reason(scores, row["quality"], thresholds=t)


def summarise(rows: dict[str, list[dict[str, Any] | None]], order: str, min_live: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, items in rows.items():
        reasons: dict[str, int] = {}
        for row in items:
            why = "FACE_NOT_DETECTED" if row is None else (decide(row, order, min_live) or "PASS")
            reasons[why] = reasons.get(why, 0) + 1
        n = len(items)
        passed = reasons.get("PASS", 0)
        out[kind] = {
            "n": n,
            "passed": round(passed / n, 4) if n else None,
            "refused": round(1 - passed / n, 4) if n else None,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--models-dir", type=Path, default=None, help="default: the install folder")
    parser.add_argument("--step", type=int, default=1, help="use every N-th photo (faster)")
    parser.add_argument("--tune", action="store_true", help="print the threshold search too")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--dump", type=Path, default=None, help="write every image's raw scores here")
    parser.add_argument("--save-examples", type=Path, default=None, help="write 4 of each attack here")
    args = parser.parse_args(argv)

    if not (args.faces / "lfw" / "pairsDevTest.txt").is_file():
        print(
            f"LFW photos not found under {args.faces}: set --faces or FACESEARCH_FACES_DIR", file=sys.stderr
        )
        return 2
    photos = lfw_dev_photos(args.faces)[:: max(1, args.step)]
    if args.save_examples:
        args.save_examples.mkdir(parents=True, exist_ok=True)
        for path in photos[:4]:
            for kind in ("print", "screen"):
                (args.save_examples / f"{path.stem}_{kind}.jpg").write_bytes(make_image(path, kind))
        print(f"examples written to {args.save_examples}")
        return 0
    models = OnnxModels(args.models_dir)
    if not models.installed():
        print("the ONNX models are not installed: run `facesearch models install onnx`", file=sys.stderr)
        return 2
    measurer = Measurer(models)
    started = time.perf_counter()
    halves: dict[str, dict[str, list[dict[str, Any] | None]]] = {
        "tune": {k: [] for k in KINDS},
        "report": {k: [] for k in KINDS},
    }
    for n, path in enumerate(photos):
        half = "tune" if n % 2 == 0 else "report"
        for kind in KINDS:
            try:
                row = measurer.measure(make_image(path, kind))
            except NoFaceDetected:
                row = None
            halves[half][kind].append(row)
    elapsed = time.perf_counter() - started
    if args.dump:
        raw = [
            {"half": half, "kind": kind, "photo": photos[2 * i + (half == "report")].name, **_raw(row)}
            for half, kinds in halves.items()
            for kind, items in kinds.items()
            for i, row in enumerate(items)
        ]
        args.dump.write_text(json.dumps(raw) + "\n")

    result: dict[str, Any] = {"photos": len(photos), "seconds": round(elapsed, 1), "orders": {}}
    for order in ("rgb", "bgr"):
        tune = halves["tune"]
        genuine = np.array([r["live"][order] for r in tune["genuine"] if r is not None])
        attacks = np.array([r["live"][order] for k in ("print", "screen") for r in tune[k] if r is not None])
        # The live-score threshold keeping GENUINE_PASS_TARGET of the genuine photos whose
        # geometry passes (the other reasons do not depend on the threshold).
        chosen = float(np.quantile(genuine, 1 - GENUINE_PASS_TARGET)) if len(genuine) else 0.5
        entry = {
            "auc_tune": round(auc(genuine, attacks), 4),
            "threshold_for_95pct_genuine": round(chosen, 4),
            "at_default_threshold": {
                "held_out": summarise(halves["report"], order, DEFAULT_THRESHOLDS.min_live_score),
                "all": summarise(
                    {k: halves["tune"][k] + halves["report"][k] for k in KINDS},
                    order,
                    DEFAULT_THRESHOLDS.min_live_score,
                ),
            },
            "at_tuned_threshold": {"held_out": summarise(halves["report"], order, chosen)},
        }
        if args.tune:
            table = []
            for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
                s = summarise(tune, order, t)
                table.append({"min_live": t, **{k: s[k]["passed"] for k in KINDS}})
            entry["tune_table_passed"] = table
        result["orders"][order] = entry
    result["thresholds"] = DEFAULT_THRESHOLDS.__dict__
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
