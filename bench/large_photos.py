"""Every face of photos far bigger than the work size: found, missed, cost (bench, not a test).

Usage: python bench/large_photos.py [--packs onnx,dlib] [--runs 3] [--faces ../shared/faces]

Builds large photos from real faces (``facesearch.eval.composite``: LFW photos pasted on a
real background at known places): a 6000x4000 group photo with six ~180-pixel faces, the
same with six ~48-pixel faces, a 20000x500 panorama with six ~200-pixel faces, and runs
every-face detection (what detect and identify-all do, default min_face_size 32) through the
real pipeline. For each it prints faces found of those pasted, other boxes, the smallest face
size the answer reports, and the median time, next to the old policy (every photo shrunk to
1024 pixels first) measured in the same run. Then the labelled group photos of
``groups/`` as a check that nothing is lost on ordinary photos.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from facesearch.eval.composite import Composite, compose, pick_faces
from facesearch.imaging import decode_image
from facesearch.pipeline.packs import build_pack
from facesearch.pipeline.runner import WORK_MAX_SIDE, AnalyseOptions, FacePipeline

MIN_FACE = 32


def old_policy(pipe: FacePipeline, data: bytes) -> list[tuple[float, float, float, float]]:
    """Before: decoded at 1024 pixels, one upsampling when 32-pixel faces are under 80 there."""
    decoded = decode_image(data, max_pixels=10**9, target_max_side=WORK_MAX_SIDE)
    upsample = 1 if MIN_FACE * decoded.scale < 80 else 0
    found = pipe.pack.detector.detect(decoded.pixels, upsample=upsample)
    k = 1 / decoded.scale
    return [
        (d.box.left * k, d.box.top * k, d.box.width * k, d.box.height * k)
        for d in found
        if min(d.box.width, d.box.height) * k >= MIN_FACE
    ]


def new_policy(pipe: FacePipeline, data: bytes) -> tuple[list[tuple[float, float, float, float]], int | None]:
    try:
        a = pipe.analyse_bytes(
            data, AnalyseOptions(every_face=True, min_face_size=MIN_FACE), max_pixels=10**9
        )
    except Exception as exc:  # NoFaceDetected
        return [], getattr(exc, "details", {}).get("smallest_face_size")
    boxes = [
        (f.detection.box.left, f.detection.box.top, f.detection.box.width, f.detection.box.height)
        for f in a.faces
    ]
    return [(float(x), float(y), float(w), float(h)) for x, y, w, h in boxes], a.smallest_face


def timed(fn, runs: int):  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return out, statistics.median(times)


def labelled_counts(groups: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    xml = groups / "dlib_training.xml"
    if xml.exists():
        for image in ET.parse(xml).getroot().iter("image"):
            counts["dlib_" + Path(image.get("file", "")).name] = len(image.findall("box"))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    ap.add_argument("--packs", default="onnx,dlib")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    lfw, background = args.faces / "lfw", args.faces / "noface" / "skimage_coffee.jpg"
    six = pick_faces(lfw, 6, seed=7)
    photos: list[tuple[str, Composite]] = [
        ("6000x4000, six ~180 px faces", compose(background, six, 6000, 4000, 180)),
        ("6000x4000, six ~48 px faces", compose(background, six, 6000, 4000, 48)),
        ("20000x500 panorama, six ~200 px", compose(background, six, 20000, 500, 200)),
    ]
    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; min_face_size {MIN_FACE}; "
        f"median of {args.runs} runs"
    )
    for name in args.packs.split(","):
        pipe = FacePipeline(build_pack(name))
        pipe.analyse_bytes(
            photos[0][1].jpeg, AnalyseOptions(every_face=True), max_pixels=10**9
        )  # load models
        print(f"\npack {name}")
        print(
            "photo | found (new) | other boxes | smallest face | ms (new) | found (old) | ms (old) "
            "| new/old time"
        )
        for label, photo in photos:
            (boxes, smallest), ms = timed(lambda p=photo, q=pipe: new_policy(q, p.jpeg), args.runs)
            old_boxes, old_ms = timed(lambda p=photo, q=pipe: old_policy(q, p.jpeg), args.runs)
            found, extra = photo.found(boxes)
            old_found, _ = photo.found(old_boxes)
            n = len(photo.faces)
            print(
                f"{label} | {found}/{n} | {extra} | {smallest} | {ms:.0f} | {old_found}/{n} | {old_ms:.0f} | "
                f"{ms / old_ms:.2f}"
            )
        labelled = labelled_counts(args.faces / "groups")
        expected = {
            "fr_two_people.jpg": 2,
            "fr_obama_and_biden.jpg": 3,
            "fr_kit_with_rose.jpg": 2,
            **labelled,
        }
        print("labelled group photo | faces expected | found (new) | ms (new) | found (old) | ms (old)")
        for photo_file in sorted((args.faces / "noface").glob("*.jpg")):
            boxes, _ = new_policy(pipe, photo_file.read_bytes())
            expected_none = len(old_policy(pipe, photo_file.read_bytes()))
            print(f"noface/{photo_file.name} | 0 | {len(boxes)} | - | {expected_none} | -")
        for file, count in sorted(expected.items()):
            data = (args.faces / "groups" / file).read_bytes()
            (boxes, _), ms = timed(lambda d=data, q=pipe: new_policy(q, d), args.runs)
            old_boxes, old_ms = timed(lambda d=data, q=pipe: old_policy(q, d), args.runs)
            print(f"{file} | {count} | {len(boxes)} | {ms:.0f} | {len(old_boxes)} | {old_ms:.0f}")


if __name__ == "__main__":
    main()
