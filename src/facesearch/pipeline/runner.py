"""Runs a model pack over one decoded image: detect, choose, align, measure, embed.

Detector settings, chosen by measurement on ../shared/faces (see README "Detection"):
- work on an image whose longer side is at most ``WORK_MAX_SIDE`` pixels: a 2000x1428
  group photo took 287 ms to scan at full size and 59 ms at 1024, with the same faces;
- HOG's window is 80x80 pixels, so faces smaller than that need one 2x upsampling
  (4x the cost: 24 ms -> 97 ms at 640x480). When one face is wanted we scan a half-size
  copy first (faces of 160 px and more), then the full image, and upsample only when
  nothing was found;
- when every face is wanted (detect, identify-all) the photo is decoded at the size where
  ``min_face_size`` measures the detector's ``native_face`` (``every_face_side``) and the
  detector's ``detect_every`` scans it down to that size within its budget (tiles for the
  ONNX detector, upsampling for HOG), reporting the smallest face it could find.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from facesearch.domain import Box, Detection, FaceChoice, FaceObservation, Landmarks, Quality, RGBImage
from facesearch.errors import NoFaceDetected
from facesearch.imaging import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    crop_face,
    decode_image,
    encode_jpeg,
    halve,
)
from facesearch.pipeline.base import Detector, ModelPack

if TYPE_CHECKING:
    from facesearch.pipeline.liveness import LivenessScores

WORK_MAX_SIDE = 1024
# Every-face work: the shorter side of the decoded photo, when it has that many pixels.
MIN_SHORT_SIDE = 240
MAX_UPSAMPLE = 1
# Single-face scans of images at least this large try a half-size pass first.
COARSE_MIN_SIDE = 400


@dataclass(frozen=True)
class AnalyseOptions:
    """How one photo is analysed: the value the service builds and the worker pool carries."""

    every_face: bool = False  # every face (detect, identify-all), else the one ``choice`` picks
    choice: FaceChoice = "central"  # with one face wanted: nearest the centre, or the largest
    crop: bool = False  # the image is already a tight face crop: no detection
    min_face_size: int = 32  # with every_face: the smallest face kept, in original pixels
    max_faces: int | None = None  # with every_face: the largest faces first, at most this many
    crop_output: tuple[int | None, float] | None = None  # (width or None, aspect): JPEG crop per face
    liveness: bool = False  # also score liveness (Analysis.liveness), with the pack's checker

    @classmethod
    def of(cls, options: AnalyseOptions | None, overrides: dict[str, Any]) -> AnalyseOptions:
        """``options`` (default: the defaults) with keyword overrides; TypeError for unknown names."""
        base = options or cls()
        return replace(base, **overrides) if overrides else base


@dataclass
class Timings:
    """Milliseconds spent per stage."""

    decode_ms: float = 0.0
    detect_ms: float = 0.0
    embed_ms: float = 0.0
    liveness_ms: float | None = None  # only when liveness was checked
    #: Loading the pack's models, when this photo was the first of its process (apart from
    #: the stages: a fresh CLI process would otherwise count ~3 s of loading as detection).
    load_ms: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Analysis:
    """The faces found in one image, in original-image coordinates."""

    faces: tuple[FaceObservation, ...]
    width: int
    height: int
    timings: Timings = field(default_factory=Timings)
    crops: tuple[bytes, ...] = ()  # JPEG crops of each face, when asked for
    liveness: tuple[LivenessScores, ...] = ()  # one per face, when liveness was asked for
    #: With every face wanted: the smallest face (original pixels, at least ``min_face_size``)
    #: the scan of this photo could find; None when one face was wanted.
    smallest_face: int | None = None


def choose_face(detections: list[Detection], width: int, height: int, how: FaceChoice) -> int:
    """Index of the face to use: the largest, or the one nearest the centre in face widths."""
    if how == "largest":
        return max(range(len(detections)), key=lambda i: detections[i].box.area)
    cx, cy = width / 2.0, height / 2.0

    def cost(i: int) -> float:
        b = detections[i].box
        fx, fy = b.center
        side = max(1.0, math.sqrt(b.area))
        # Distance from the centre measured in face sizes: a big face a little off-centre
        # beats a small face in the background that happens to sit nearer the centre.
        return math.hypot(fx - cx, fy - cy) / side

    return min(range(len(detections)), key=cost)


def every_face_side(detector: Detector, width: int, height: int, min_face_size: int) -> int | None:
    """The longer side to decode a ``width`` x ``height`` photo at for every face down to
    ``min_face_size`` pixels: where such a face measures the detector's ``native_face`` (no
    zoom or upsampling needed), at least WORK_MAX_SIDE, at most full size (None) or the
    detector's ``max_work_pixels``.

    A 6000x4000 photo with the default 32 pixels is decoded at 3750x2500 for the ONNX
    detector (20-pixel faces at 1:1): its 180-pixel faces, 31 pixels at 1024, are found. The
    shorter side is kept at MIN_SHORT_SIDE pixels or more, so a 20000x500 panorama is not
    shrunk to a strip that faces fill.
    """
    long_side, short_side = max(width, height), min(width, height)
    scale = min(
        1.0,
        max(detector.native_face / min_face_size, MIN_SHORT_SIDE / short_side),
        math.sqrt(detector.max_work_pixels / (width * height)),
    )
    side = max(WORK_MAX_SIDE, math.ceil(long_side * scale))
    return None if side >= long_side else side


def _scale_detection(d: Detection, factor: float) -> Detection:
    if factor == 1.0:
        return d
    b = d.box
    box = Box(
        round(b.left * factor), round(b.top * factor), round(b.width * factor), round(b.height * factor)
    )
    points = tuple((x * factor, y * factor) for x, y in d.landmarks.points)
    return Detection(box=box, score=d.score, landmarks=Landmarks(points))


def _scale_quality(q: Quality, factor: float) -> Quality:
    if factor == 1.0:
        return q
    return replace(
        q, face_size=round(q.face_size * factor), border_distance=round(q.border_distance * factor)
    )


class FacePipeline:
    """One model pack applied to decoded images."""

    def __init__(self, pack: ModelPack) -> None:
        self.pack = pack
        self._loaded = False

    def warm_up(self) -> float:
        """Load the pack's models (once) and run each on a blank image; the milliseconds it took
        (0.0 when already loaded)."""
        if self._loaded:
            return 0.0
        t0 = time.perf_counter()
        self.pack.warm_up()
        self._loaded = True
        return (time.perf_counter() - t0) * 1000

    def analyse(
        self,
        pixels: RGBImage,
        options: AnalyseOptions | None = None,
        *,
        scale: float = 1.0,
        timings: Timings | None = None,
        **overrides: Any,
    ) -> Analysis:
        """Find, align, measure and embed faces in ``pixels`` (already at work size).

        ``scale`` is work-image width / original width; results are reported in
        original-image pixels. Without ``every_face`` only the chosen face is embedded.
        ``liveness``: also score each face with the pack's liveness checker (raises
        LivenessUnavailable when the pack has none installed). Raises NoFaceDetected when
        no face is found. ``overrides`` replace fields of ``options`` (``AnalyseOptions``).
        """
        opts = AnalyseOptions.of(options, overrides)
        every_face, crop, min_face_size = opts.every_face, opts.crop, opts.min_face_size
        if opts.liveness:
            self.pack.require_liveness()
        timings = timings or Timings()
        smallest: int | None = None
        h, w = pixels.shape[:2]
        t0 = time.perf_counter()
        if crop:
            detections = [self.pack.detector.locate(pixels, Box(0, 0, w, h))]
        elif every_face:
            detections, reach = self.pack.detector.detect_every(pixels, min_face=min_face_size * scale)
            if not detections and self.pack.fallback_detector is not None:
                detections, reach = self.pack.fallback_detector.detect_every(
                    pixels, min_face=min_face_size * scale
                )
            smallest = max(min_face_size, math.ceil(reach / scale - 1e-6))
        else:
            detections = self.detect_single(pixels)
        inv = 1.0 / scale
        if every_face and not crop:
            detections = [d for d in detections if min(d.box.width, d.box.height) * inv >= min_face_size]
            detections.sort(key=lambda d: -d.box.area)
            if opts.max_faces is not None:
                detections = detections[: opts.max_faces]
        timings.detect_ms += (time.perf_counter() - t0) * 1000
        if not detections:
            details = {} if smallest is None else {"smallest_face_size": smallest}
            raise NoFaceDetected("no face was found in the image", details=details)
        found = detections
        if not every_face and len(detections) > 1:
            detections = [detections[choose_face(detections, w, h, opts.choice)]]
        live: tuple[LivenessScores, ...] = ()
        if opts.liveness:
            live = self._liveness(pixels, detections, found, every_face, timings)
        t1 = time.perf_counter()
        chips = [self.pack.aligner.align(pixels, d) for d in detections]
        qualities = [self.pack.quality.assess(pixels, d, c) for d, c in zip(detections, chips, strict=True)]
        embeddings = self.pack.embedder.embed(chips)
        timings.embed_ms += (time.perf_counter() - t1) * 1000
        faces = tuple(
            FaceObservation(
                detection=_scale_detection(d, inv),
                quality=_scale_quality(q, inv),
                embedding=embeddings[i],
                chip=chips[i],
                pack=self.pack.name,
            )
            for i, (d, q) in enumerate(zip(detections, qualities, strict=True))
        )
        return Analysis(
            faces=faces,
            width=round(w * inv),
            height=round(h * inv),
            timings=timings,
            liveness=live,
            smallest_face=smallest,
        )

    def _liveness(
        self,
        pixels: RGBImage,
        detections: list[Detection],
        found: list[Detection],
        every_face: bool,
        timings: Timings,
    ) -> tuple[LivenessScores, ...]:
        """Liveness scores of the chosen face(s); with one face wanted, the sizes of the
        other faces found (relative to it) go along for the TOO_MANY_FACES rule."""
        checker = self.pack.require_liveness()
        t0 = time.perf_counter()
        out = []
        for d in detections:
            scores = checker.check(pixels, d)
            if not every_face:
                side = max(1, min(d.box.width, d.box.height))
                others = tuple(min(o.box.width, o.box.height) / side for o in found if o is not d)
                scores = replace(scores, other_faces=others)
            out.append(scores)
        timings.liveness_ms = (timings.liveness_ms or 0.0) + (time.perf_counter() - t0) * 1000
        return tuple(out)

    def detect_single(self, pixels: RGBImage) -> list[Detection]:
        """The scan when one face is wanted: half size, then full size, then upsampled, then the
        pack's fallback detector (if any)."""
        h, w = pixels.shape[:2]
        detections = self._coarse_detect(pixels) if max(h, w) >= COARSE_MIN_SIDE else []
        if not detections:
            detections = self.pack.detector.detect(pixels, upsample=0)
        if not detections:
            detections = self.pack.detector.detect(pixels, upsample=MAX_UPSAMPLE)
        if not detections and self.pack.fallback_detector is not None:
            detections = self.pack.fallback_detector.detect(pixels, upsample=0)
        return detections

    def _coarse_detect(self, pixels: RGBImage) -> list[Detection]:
        """Scan a half-size copy; refine each face's landmarks on the full image.

        A face big enough to be found at half size (160 px and more) costs a quarter of
        the scan: 25 ms -> about 8 ms at 640x480 (see README "Detection settings").
        """
        half = halve(pixels)
        # A detector that can give boxes alone (the ONNX one) skips the landmarks of the half-size
        # pass: they are placed again on the full image (0.6-1 ms a photo).
        boxes_only = getattr(self.pack.detector, "boxes", None)
        if boxes_only is not None:
            found: list[tuple[Box, float]] = boxes_only(half, upsample=0)
        else:
            found = [(d.box, d.score) for d in self.pack.detector.detect(half, upsample=0)]
        out = []
        for b, score in found:
            box = Box(b.left * 2, b.top * 2, b.width * 2, b.height * 2)
            refined = self.pack.detector.locate(pixels, box)
            out.append(Detection(box=box, score=score, landmarks=refined.landmarks))
        return out

    def analyse_bytes(
        self,
        data: bytes,
        options: AnalyseOptions | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        **overrides: Any,
    ) -> Analysis:
        """Decode ``data`` once at the work size (JPEG draft mode) and analyse it.

        ``crop_output`` = (width or None, aspect): also return a JPEG crop of each face
        (with a 20% margin), cut from the decoded image. ``overrides`` as for ``analyse``.
        """
        opts = AnalyseOptions.of(options, overrides)
        timings = Timings()
        if not self._loaded:
            timings.load_ms = self.warm_up()
        t0 = time.perf_counter()
        target: Any = WORK_MAX_SIDE
        if opts.every_face and not opts.crop:
            target = partial(every_face_side, self.pack.detector, min_face_size=opts.min_face_size)
        decoded = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, target_max_side=target)
        timings.decode_ms = (time.perf_counter() - t0) * 1000
        analysis = self.analyse(decoded.pixels, opts, scale=decoded.scale, timings=timings)
        crops: tuple[bytes, ...] = ()
        if opts.crop_output is not None:
            size, aspect = opts.crop_output
            crops = tuple(
                encode_jpeg(
                    crop_face(
                        decoded.pixels,
                        f.detection.box.left * decoded.scale,
                        f.detection.box.top * decoded.scale,
                        f.detection.box.width * decoded.scale,
                        f.detection.box.height * decoded.scale,
                        output_size=size,
                        output_aspect=aspect,
                    ),
                    quality=88,
                )
                for f in analysis.faces
            )
        return replace(analysis, width=decoded.original_width, height=decoded.original_height, crops=crops)
