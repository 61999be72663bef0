"""Per-stage timings of a model pack's pipeline (default dlib): decode, detect, align, quality, embed.

Each stage is timed on its own by calling the model pack's parts directly, on two sets
of real photos from ../shared/faces (or --faces / FACESEARCH_FACES_DIR):

- 640x480: the single-face photos (people/*, probes/obama1.jpg, probes/alex_lacamoire1.jpg),
  each cropped to 4:3 around its face, resized to 640x480 and re-encoded as JPEG quality 90
  in memory, so that decode really decodes a 640x480 JPEG;
- 250x250: the first 100 LFW photos (sorted paths).

Every call is one sample (images x --repeat); the figures are the median and p90 of the
samples in wall-clock milliseconds, and the median CPU time of the calling thread (less
disturbed by other processes on a busy machine). End-to-end ``FacePipeline.analyse_bytes``
is timed too. Stages are interleaved photo by photo; models are loaded and warmed up
before any timing; BLAS/OpenMP are pinned to one thread.

    .venv/bin/python bench/pipeline.py [--repeat N] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# One thread everywhere: set before numpy (OpenBLAS) is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
from PIL import Image

from facesearch.domain import Detection
from facesearch.errors import NoFaceDetected
from facesearch.imaging import decode_image
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.packs import build_pack
from facesearch.pipeline.runner import MAX_UPSAMPLE, WORK_MAX_SIDE, FacePipeline, choose_face

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
FACES_ENV = "FACESEARCH_FACES_DIR"
DEFAULT_REPEAT = 2
LFW_COUNT = 100
SMALL_SIZE = (640, 480)
JPEG_QUALITY = 90
SINGLE_FACE_PROBES = ("obama1.jpg", "alex_lacamoire1.jpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg")

# (key, label) in table order; "detect (policy)" is what the runner does when one face is wanted.
STAGES = (
    ("decode", "decode (`decode_image`, target_max_side=WORK_MAX_SIDE)"),
    ("detect_up0", "detect, upsample=0 (detector + landmarks; dlib: HOG + 5 points)"),
    ("detect_up1", "detect, upsample=1 (detector + landmarks; dlib: HOG + 5 points)"),
    ("detect_policy", "detect, runner policy (half size, full, then upsampled)"),
    ("landmarks", "landmarks alone (`locate`, 1 face; part of detect)"),
    ("align", "align (dlib: `get_face_chip` 150x150)"),
    ("quality", "quality (`BasicQualityChecker.assess`)"),
    ("embed", "embed (1 chip; dlib: ResNet descriptor)"),
    ("embed_dlib_bin", "embed, dlib-bin's own engine (`FACESEARCH_DLIB_ENGINE=dlib`; not summed)"),
    ("stage_sum", "sum: decode + detect policy + align + quality + embed"),
    ("analyse_bytes", "end to end: `FacePipeline.analyse_bytes`"),
)
SUMMED = ("decode", "detect_policy", "align", "quality", "embed")


@dataclass
class Sample:
    """One test photo: its JPEG bytes and its pixels decoded at the work size."""

    name: str
    data: bytes
    pixels: np.ndarray
    face: Face | None = None


@dataclass
class Face:
    """The face the runner would embed in one photo, and its aligned chip."""

    pixels: np.ndarray
    detection: Detection
    chip: np.ndarray


@dataclass
class SetResult:
    """Timings (ms per call) of one photo set, with detection counts."""

    label: str
    images: int
    times: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def faces_dir(arg: str | None) -> Path:
    """--faces, else $FACESEARCH_FACES_DIR, else ../shared/faces; exits when it is missing."""
    chosen = arg or os.environ.get(FACES_ENV) or str(DEFAULT_FACES)
    path = Path(chosen).expanduser().resolve()
    if not (path / "lfw").is_dir() or not (path / "people").is_dir():
        sys.exit(
            f"bench/pipeline.py: face photos not found at {path} (need lfw/ and people/ there).\n"
            f"Put the shared photos at {DEFAULT_FACES} (../shared/faces beside the repository), "
            f"or pass --faces DIR or set {FACES_ENV}."
        )
    return path


def _jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _crop_4_3(pixels: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The largest 640:480 window of ``pixels`` centred (as far as it fits) on ``centre``."""
    h, w = pixels.shape[:2]
    tw, th = SMALL_SIZE
    if w * th > h * tw:
        cw, ch = round(h * tw / th), h
    else:
        cw, ch = w, round(w * th / tw)
    x0 = int(min(max(round(centre[0] - cw / 2), 0), w - cw))
    y0 = int(min(max(round(centre[1] - ch / 2), 0), h - ch))
    crop = Image.fromarray(np.ascontiguousarray(pixels[y0 : y0 + ch, x0 : x0 + cw]))
    resized = crop.resize(SMALL_SIZE, Image.Resampling.LANCZOS)
    return np.asarray(resized, dtype=np.uint8)


def small_photos(faces: Path, pipeline: FacePipeline) -> list[tuple[str, bytes]]:
    """640x480 JPEGs (quality 90) made in memory from the single-face photos."""
    paths = sorted(p for p in (faces / "people").glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    paths += [faces / "probes" / name for name in SINGLE_FACE_PROBES]
    out = []
    for path in paths:
        if not path.is_file():
            sys.exit(f"bench/pipeline.py: missing photo {path}")
        raw = path.read_bytes()
        original = decode_image(raw).pixels  # upright (EXIF applied), full size
        try:
            face = pipeline.analyse_bytes(raw).faces[0]
            centre = face.detection.box.center
        except NoFaceDetected:
            centre = (original.shape[1] / 2, original.shape[0] / 2)
        out.append((str(path.relative_to(faces)), _jpeg(_crop_4_3(original, centre))))
    return out


def lfw_photos(faces: Path, count: int) -> list[tuple[str, bytes]]:
    paths = sorted((faces / "lfw").glob("*/*.jpg"), key=lambda p: p.relative_to(faces).as_posix())[:count]
    if len(paths) < count:
        sys.exit(f"bench/pipeline.py: only {len(paths)} LFW photos under {faces / 'lfw'}, need {count}")
    return [(str(p.relative_to(faces)), p.read_bytes()) for p in paths]


def detect_policy(pack: ModelPack, pixels: np.ndarray) -> list[Detection]:
    """The runner's one-face policy (``FacePipeline.detect_single``)."""
    return FacePipeline(pack).detect_single(pixels)


def prepare(pack: ModelPack, photos: list[tuple[str, bytes]]) -> tuple[list[Sample], dict[str, int]]:
    """Decode each photo and find the face (and chip) the runner would embed."""
    samples = []
    counts = {"images": len(photos), "found_up0": 0, "found_up1": 0, "found_policy": 0, "needed_up1": 0}
    for name, data in photos:
        pixels = decode_image(data, target_max_side=WORK_MAX_SIDE).pixels
        sample = Sample(name, data, pixels)
        samples.append(sample)
        up0 = pack.detector.detect(pixels, upsample=0)
        counts["found_up0"] += bool(up0)
        counts["found_up1"] += bool(pack.detector.detect(pixels, upsample=1))
        counts["needed_up1"] += not up0
        found = detect_policy(pack, pixels)
        if found:
            counts["found_policy"] += 1
            h, w = pixels.shape[:2]
            detection = found[choose_face(found, w, h, "central")]
            sample.face = Face(pixels, detection, pack.aligner.align(pixels, detection))
    return samples, counts


def _analyse_or_none(pipeline: FacePipeline, data: bytes) -> object:
    try:
        return pipeline.analyse_bytes(data)
    except NoFaceDetected:
        return None


def dlib_bin_descriptor() -> Any:
    """dlib-bin's own descriptor engine, whatever FACESEARCH_DLIB_ENGINE says."""
    import dlib

    from facesearch.pipeline.dlib_pack import DESCRIPTOR_MODEL, DlibBinDescriptor, models_dir

    return DlibBinDescriptor(dlib, models_dir() / DESCRIPTOR_MODEL)


def bench_set(label: str, pack: ModelPack, photos: list[tuple[str, bytes]], repeat: int) -> SetResult:
    """Time every stage on every photo, ``repeat`` passes.

    Stages are interleaved (each photo goes through all stages before the next photo) so
    that load from other processes on a shared machine hits every stage alike.
    """
    pipeline = FacePipeline(pack)
    samples, counts = prepare(pack, photos)
    det = pack.detector
    on_photo: dict[str, Callable[[Sample], object]] = {
        "decode": lambda s: decode_image(s.data, target_max_side=WORK_MAX_SIDE),
        "detect_up0": lambda s: det.detect(s.pixels, upsample=0),
        "detect_up1": lambda s: det.detect(s.pixels, upsample=1),
        "detect_policy": lambda s: detect_policy(pack, s.pixels),
        "analyse_bytes": lambda s: _analyse_or_none(pipeline, s.data),
    }
    on_face: dict[str, Callable[[Face], object]] = {
        "landmarks": lambda f: det.locate(f.pixels, f.detection.box),
        "align": lambda f: pack.aligner.align(f.pixels, f.detection),
        "quality": lambda f: pack.quality.assess(f.pixels, f.detection, f.chip),
        "embed": lambda f: pack.embedder.embed([f.chip]),
    }
    if pack.name == "dlib":  # the same network on dlib-bin, timed beside the onnxruntime graph
        own = dlib_bin_descriptor()
        on_face["embed_dlib_bin"] = lambda f: own.compute(f.chip[None])
    times: dict[str, list[float]] = {key: [] for key in (*on_photo, *on_face)}
    cpu: dict[str, list[float]] = {key: [] for key in times}

    def record(key: str, t0: int, c0: int) -> None:
        times[key].append((time.perf_counter_ns() - t0) / 1e6)
        cpu[key].append((time.thread_time_ns() - c0) / 1e6)

    def one_pass(items: list[Sample], keep: bool) -> None:
        for sample in items:
            for key, on_sample in on_photo.items():
                c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
                on_sample(sample)
                if keep:
                    record(key, t0, c0)
            if sample.face is None:
                continue
            for key, on_chip in on_face.items():
                c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
                on_chip(sample.face)
                if keep:
                    record(key, t0, c0)

    one_pass(samples[:3], keep=False)  # warm-up: caches, lazy initialisation
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            one_pass(samples, keep=True)
    finally:
        gc.enable()
    return SetResult(label=label, images=len(samples), times=times, cpu=cpu, counts=counts)


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90)) if values else float("nan")


def summarise(result: SetResult) -> dict[str, Any]:
    """Median and p90 wall-clock ms per stage, and median CPU ms of this thread."""
    stages: dict[str, Any] = {
        key: {
            "median_ms": round(median(wall), 3),
            "p90_ms": round(p90(wall), 3),
            "cpu_median_ms": round(median(result.cpu[key]), 3),
            "samples": len(wall),
        }
        for key, wall in result.times.items()
    }
    stages["stage_sum"] = {
        "median_ms": round(sum(median(result.times[k]) for k in SUMMED), 3),
        "p90_ms": None,
        "cpu_median_ms": round(sum(median(result.cpu[k]) for k in SUMMED), 3),
        "samples": None,
    }
    return {"images": result.images, "counts": result.counts, "stages": stages}


def _cell(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """Stages as rows; per photo size: median, p90 (wall clock) and median CPU time."""
    labels = list(summaries)
    head = ["stage (ms per image)"]
    for label in labels:
        head += [f"{label} median", "p90", "CPU median"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for key, text in STAGES:
        row = [text]
        for label in labels:
            stage = summaries[label]["stages"].get(key)
            row += [_cell(stage[k] if stage else None) for k in ("median_ms", "p90_ms", "cpu_median_ms")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def settings(repeat: int, faces: Path) -> dict[str, Any]:
    import dlib
    import PIL

    return {
        "WORK_MAX_SIDE": WORK_MAX_SIDE,
        "MAX_UPSAMPLE": MAX_UPSAMPLE,
        "upsample_policy": (
            "one face wanted: a half-size scan (images >= COARSE_MIN_SIDE), then upsample=0, "
            "then upsample=1 only if nothing was found; "
            "every face: upsample_for(min_face_size, scale)"
        ),
        "repeat": repeat,
        "faces_dir": str(faces),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "dlib": dlib.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="passes over each photo set")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--faces", help=f"photo folder (default: ${FACES_ENV} or ../shared/faces)")
    parser.add_argument("--pack", default="dlib", help="model pack: dlib (default), dlib-flip, onnx, fusion")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    faces = faces_dir(args.faces)

    started = time.perf_counter()
    pack = build_pack(args.pack)
    pipeline = FacePipeline(pack)
    # Load the models and run every stage once before anything is timed.
    lfw = lfw_photos(faces, LFW_COUNT)
    _analyse_or_none(pipeline, lfw[0][1])
    small = small_photos(faces, pipeline)

    results = [
        bench_set(f"{SMALL_SIZE[0]}x{SMALL_SIZE[1]}", pack, small, args.repeat),
        bench_set("LFW 250x250", pack, lfw, args.repeat),
    ]
    summaries = {r.label: summarise(r) for r in results}
    conf = settings(args.repeat, faces)
    conf["elapsed_s"] = round(time.perf_counter() - started, 1)

    print(f"# facesearch pipeline stages ({pack.name} pack), {args.repeat} passes over each photo set\n")
    print(markdown(summaries))
    print()
    for label, summary in summaries.items():
        c = summary["counts"]
        print(
            f"- {label}: {c['images']} photos; a face found by upsample=0 in {c['found_up0']}, "
            f"by upsample=1 in {c['found_up1']}, by the policy in {c['found_policy']} "
            f"(upsample=1 was needed for {c['needed_up1']}); align/quality/embed timed on "
            f"the {c['found_policy']} with a face"
        )
    print(f"- WORK_MAX_SIDE = {WORK_MAX_SIDE}; upsample policy: {conf['upsample_policy']}")
    print(
        f"- single process, {conf['threads']} BLAS/OpenMP thread, gc paused while timing; "
        f"{conf['cpu_count']} CPUs, Python {conf['python']}, dlib {conf['dlib']}, "
        f"numpy {conf['numpy']}, Pillow {conf['pillow']}; run took {conf['elapsed_s']} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"settings": conf, "sets": summaries}, indent=2) + "\n")
        print(f"- figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
