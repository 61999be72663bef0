"""The ``onnx`` and ``fusion`` model packs (weights: ``facesearch models install onnx``).

- ``onnx``: RFB-320 detector, 68-point landmarks, 5-point similarity alignment to the
  112x112 reference, MobileFaceNet 512-d embedding (L2-normalised).
- ``fusion``: the same detector and landmarks; the dlib ResNet descriptor on dlib's chip
  (``get_face_chip`` from the 5 points of the 68) and MobileFaceNet on its own 112x112
  chip; the two L2-normalised embeddings are weighted and concatenated (128 + 512 = 640
  dimensions, unit length), so one index search ranks by the fused cosine score.

Embeddings of both packs have unit length, so the index's Euclidean distance d and the
cosine similarity c are tied by d = sqrt(2 - 2c). Measurements (LFW dev pairs, 1,000
pairs) are in README "ONNX pack"; the numbers below come from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.config import PackConfig
from facesearch.domain import Box, Detection, Quality, RGBImage
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.cores import cores, using
from facesearch.pipeline.dlib_pack import DlibAligner, DlibDetector, DlibEmbedder, DlibModels
from facesearch.pipeline.liveness import OnnxLivenessChecker
from facesearch.pipeline.onnx.align import CHIP_SIZE, REFERENCE_112, align_112, similarity_transform, warp
from facesearch.pipeline.onnx.detect import OnnxDetection, RfbDetector, five_points, hog_box
from facesearch.pipeline.onnx.models import OnnxModels
from facesearch.pipeline.onnx.retina import RetinaLandmarks
from facesearch.pipeline.onnx.tensors import planes
from facesearch.pipeline.quality import BasicQualityChecker
from facesearch.pipeline.similarity import LogisticSimilarity

# MobileFaceNet was trained on BGR input: on 5,820 LFW pairs BGR scored 99.3%, RGB (what
# the JavaScript feeds) 99.1%; on the 1,000 dev pairs 99.2% against 99.0%.
FEATURE_CHANNELS = "bgr"
# Provisional scales until calibration tables exist (pipeline/calibration/<pack>.json wins):
# similarity 0.5 at the best threshold on the LFW dev pairs (Euclidean distance between
# unit embeddings; chosen on the pairs it is measured on), scale a tenth of it as for dlib.
ONNX_SIMILARITY = LogisticSimilarity(midpoint=1.163, scale=0.116)
FUSION_SIMILARITY = LogisticSimilarity(midpoint=0.681, scale=0.068)
# Fusion weights (squared weights sum to 1, so the fused vector has unit length and the
# fused cosine is w_dlib^2 * cos_dlib + w_mfn^2 * cos_mfn). z-score fusion: each cosine is
# divided by the spread of its impostor scores (dlib 0.035, MobileFaceNet 0.099 on 5,820
# LFW pairs), which gives w_dlib^2 = 0.74.
FUSION_DLIB_WEIGHT2 = 0.74
RETINA_SIMILARITY = LogisticSimilarity(midpoint=1.2, scale=0.12)
# The retina pack's two embedders weigh the same (squared weights 0.5 each): on the LFW dev
# identification protocol FNIR at FPIR 1% was 6.31% / 4.86% / 5.06% with 0.3 / 0.5 / 0.7 for
# the 512-d one (README "Accuracy").
RETINA_WEIGHT2_512 = 0.5


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class _OnnxEmbedder:
    """An embedder running one ONNX network on 112x112 chips; rows L2-normalised."""

    dim = 0

    def __init__(self, models: OnnxModels) -> None:
        self._models = models

    def embed(self, chips: Sequence[RGBImage]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit_rows(self._rows(chips))

    def _rows(self, chips: Sequence[RGBImage]) -> np.ndarray:
        raise NotImplementedError


def points68_of(detector: RfbDetector, image: RGBImage, detection: Detection) -> np.ndarray:
    """The 68 landmarks a detection carries, or placed on its box (a plain Detection)."""
    if isinstance(detection, OnnxDetection) and detection.points68:
        return np.asarray(detection.points68, dtype=np.float64)
    return detector.landmarks68(image, detection.box)


class MobileFaceNetEmbedder(_OnnxEmbedder):
    """512-d MobileFaceNet embeddings of 112x112 chips, L2-normalised."""

    dim = 512

    def _rows(self, chips: Sequence[RGBImage]) -> np.ndarray:
        order = (2, 1, 0) if FEATURE_CHANNELS == "bgr" else (0, 1, 2)
        rows = []
        for chip in chips:
            (out,) = self._models.run("feature", planes(np.asarray(chip), order, 127.0, 128.0))
            rows.append(out[0])
        return np.stack(rows)


class MobileFaceNet192Embedder(_OnnxEmbedder):
    """192-d MobileFaceNet (sirius-ai, converted from TensorFlow Lite), L2-normalised.

    RGB input scaled as (x - 127.5) / 128, as the package's Kotlin feeds it (BGR scored 8.5
    points worse at FNIR at FPIR 1% on the dev identification protocol). The converted graph has a
    fixed batch of two, which the session frees (``onnx/graph.py``: one chip 10.3 -> 5.3 ms); a
    graph still fixed at some batch gets its chips in groups of that size.
    """

    dim = 192

    def _rows(self, chips: Sequence[RGBImage]) -> np.ndarray:
        x = planes([np.asarray(c) for c in chips], (0, 1, 2), 127.5, 128.0)
        fixed = self._models.session("feature192").get_inputs()[0].shape[0]
        if not isinstance(fixed, int) or fixed <= 0:
            (out,) = self._models.run("feature192", x)
            return np.asarray(out)
        rows: list[np.ndarray] = []
        for start in range(0, len(x), fixed):
            group = x[start : start + fixed]
            padded = np.concatenate([group] + [group[-1:]] * (fixed - len(group)))
            (out,) = self._models.run("feature192", padded)
            rows.extend(out[: len(group)])
        return np.stack(rows)


class DuoEmbedder:
    """Both MobileFaceNets on the same 112x112 chip, each unit-length, weighted and concatenated
    (512 + 192 = 704 dimensions, unit length)."""

    dim = 704

    def __init__(self, m512: MobileFaceNetEmbedder, m192: MobileFaceNet192Embedder, weight2: float) -> None:
        self._a, self._b = m512, m192
        self._wa, self._wb = float(np.sqrt(weight2)), float(np.sqrt(1.0 - weight2))

    def embed(self, chips: Sequence[RGBImage]) -> np.ndarray:
        """With two cores for this photo (``facesearch.pipeline.cores``), the 192-d network runs in a
        second thread while this one runs the 512-d one (each on one core: onnxruntime releases the
        GIL while it computes)."""
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        if cores() >= 2:
            other = _second_thread().submit(self._b.embed, chips)  # a new thread: one core
            with using(1):
                a = self._a.embed(chips)
            b = other.result()
        else:
            a, b = self._a.embed(chips), self._b.embed(chips)
        return np.hstack([self._wa * a, self._wb * b]).astype(np.float32)


@lru_cache(maxsize=1)
def _second_thread() -> ThreadPoolExecutor:
    """The one extra thread of a worker process that runs a second network at once."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed2")


class RetinaAligner:
    """The 112x112 chip from RetinaFace's five points on the detector's box; the five points of
    the 68 landmarks when RetinaFace does not find the face there."""

    def __init__(self, detector: RfbDetector, landmarks: RetinaLandmarks) -> None:
        self._detector = detector
        self._landmarks = landmarks

    def align(self, image: RGBImage, detection: Detection) -> RGBImage:
        five = self._landmarks.points5(image, detection.box)
        if five is None:
            return align_112(image, points68_of(self._detector, image, detection))
        return warp(image, similarity_transform(five, REFERENCE_112), CHIP_SIZE)


class OnnxAligner:
    """The 112x112 chip: least-squares 5-point similarity to the reference points."""

    def __init__(self, detector: RfbDetector) -> None:
        self._detector = detector

    def align(self, image: RGBImage, detection: Detection) -> RGBImage:
        return align_112(image, points68_of(self._detector, image, detection))


class FusionChip(np.ndarray):
    """dlib's 150x150 chip (what quality, thumbnails and dlib see), carrying MobileFaceNet's
    112x112 chip of the same face in ``mfn``, cut from the original image by the aligner.

    The Aligner protocol hands one chip to the embedder; both embedders need their own
    alignment. ``mfn`` is lost when the chip is copied or pickled; the embedder then places
    the 68 points on the dlib chip and aligns from it (measured on 5,820 LFW pairs: 99.38%
    fused against 99.45% from the original image).
    """

    mfn: np.ndarray | None = None

    def __array_finalize__(self, obj: object) -> None:
        self.mfn = getattr(obj, "mfn", None)


class FusionAligner:
    """dlib's chip from the 5 points of the ONNX landmarks, plus MobileFaceNet's chip."""

    def __init__(self, dlib_models: DlibModels, detector: RfbDetector) -> None:
        self._chip = DlibAligner(dlib_models)
        self._detector = detector

    def align(self, image: RGBImage, detection: Detection) -> RGBImage:
        points = points68_of(self._detector, image, detection)
        five = Detection(box=detection.box, score=detection.score, landmarks=five_points(points))
        chip = self._chip.align(image, five).view(FusionChip)
        chip.mfn = align_112(image, points)
        return chip


class FusionEmbedder:
    """Weighted concatenation of unit dlib (128) and unit MobileFaceNet (512) embeddings."""

    dim = 640

    def __init__(
        self, dlib: DlibEmbedder, mfn: MobileFaceNetEmbedder, detector: RfbDetector, dlib_weight2: float
    ) -> None:
        self._dlib = dlib
        self._mfn = mfn
        self._detector = detector
        self._wd = float(np.sqrt(dlib_weight2))
        self._wm = float(np.sqrt(1.0 - dlib_weight2))

    def _mfn_chip(self, chip: RGBImage) -> RGBImage:
        carried = getattr(chip, "mfn", None)
        if carried is not None:
            return np.asarray(carried)
        h, w = chip.shape[:2]
        return align_112(chip, self._detector.landmarks68(chip, Box(0, 0, w, h)))

    def embed(self, chips: Sequence[RGBImage]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        d = _unit_rows(self._dlib.embed([np.asarray(c) for c in chips]))
        m = self._mfn.embed([self._mfn_chip(c) for c in chips])
        return np.hstack([self._wd * d, self._wm * m]).astype(np.float32)


class OnnxFallbackDetector:
    """The ONNX detector's faces for the dlib packs, asked only when HOG found none.

    Each ONNX box is reframed as a HOG box and goes through dlib's own 5-point predictor, so
    the dlib chip keeps its alignment; a photo HOG handles is embedded exactly as before, and
    nothing changes until ``facesearch models install onnx`` has run (no models: no faces).
    On the LFW dev split HOG missed 9 of 3,708 photos and the ONNX detector 1; with the ONNX
    detector for every face the dlib embedding lost 0.4-0.5 point on the dev pairs (98.4-98.5%
    against 98.9%), which is why it is only a fallback.
    """

    def __init__(self, dlib_models: DlibModels, onnx: RfbDetector) -> None:
        self._hog = DlibDetector(dlib_models)
        self._onnx = onnx

    def detect(self, image: RGBImage, *, upsample: int) -> list[Detection]:
        if not self._onnx.models.installed():
            return []
        return [
            replace(self._hog.locate(image, hog_box(box)), score=score)
            for box, score in self._onnx.boxes(image, upsample=upsample)
        ]

    native_face = RfbDetector.native_face
    max_work_pixels = RfbDetector.max_work_pixels

    def detect_every(self, image: RGBImage, *, min_face: float) -> tuple[list[Detection], float]:
        if not self._onnx.models.installed():
            return [], min_face
        found, smallest = self._onnx.every_box(image, min_face=min_face)
        return [replace(self._hog.locate(image, hog_box(box)), score=score) for box, score in found], smallest

    def locate(self, image: RGBImage, box: Box) -> Detection:
        return self._hog.locate(image, box)


def optional_fallback_detector(
    dlib_models: DlibModels, models_dir: Path | None = None
) -> OnnxFallbackDetector:
    """The dlib packs' fallback detector; it finds nothing until the ONNX models are installed."""
    return OnnxFallbackDetector(dlib_models, RfbDetector(OnnxModels(models_dir)))


class ChipScaledQuality:
    """BasicQualityChecker on the chip resized to dlib's 150 pixels, so sharpness reads on
    the same scale as the enrolment gate's threshold (measured on 150x150 chips)."""

    def __init__(self, size: int = 150) -> None:
        self._inner = BasicQualityChecker()
        self._size = size

    def assess(self, image: RGBImage, detection: Detection, chip: RGBImage) -> Quality:
        from PIL import Image

        if chip.shape[0] != self._size:
            chip = np.asarray(
                Image.fromarray(chip).resize((self._size, self._size), Image.Resampling.BILINEAR)
            )
        return self._inner.assess(image, detection, chip)


def build_onnx_pack(name: str, config: PackConfig) -> ModelPack:
    """The ``onnx`` or ``fusion`` pack; ModelUnavailable (naming the install command) when
    the ONNX files are not installed."""
    from facesearch.pipeline.calibration import pack_scale

    models = OnnxModels(config.models_dir)
    models.require(f"the {name!r} model pack")
    detector = RfbDetector(models)
    liveness = OnnxLivenessChecker(models, detector)
    mfn = MobileFaceNetEmbedder(models)

    def pack(provisional: LogisticSimilarity, aligner: Any, embedder: Any, quality: Any) -> ModelPack:
        scale = pack_scale(name, provisional)
        return ModelPack(
            name=name,
            detector=detector,
            aligner=aligner,
            embedder=embedder,
            quality=quality,
            similarity=scale.similarity,
            distance_for_similarity=scale.distance_for_similarity,
            default_threshold=scale.default_threshold,
            liveness=liveness,
            calibration=scale.table,
        )

    if name == "onnx":
        return pack(ONNX_SIMILARITY, OnnxAligner(detector), mfn, ChipScaledQuality())
    if name == "fusion":
        dlib_models = DlibModels(engine=config.dlib_engine)
        return pack(
            FUSION_SIMILARITY,
            FusionAligner(dlib_models, detector),
            FusionEmbedder(DlibEmbedder(dlib_models), mfn, detector, FUSION_DLIB_WEIGHT2),
            BasicQualityChecker(),
        )
    if name == "retina":
        from facesearch.pipeline import retina_install as ri

        extra = OnnxModels(
            config.models_dir,
            folder=ri.retina_dir,
            files=ri.MODEL_FILES,
            missing=ri.missing_models,
            error=ri.not_installed_error,
            free_batch=frozenset({"feature192"}),
        )
        extra.require("the 'retina' model pack")
        return pack(
            RETINA_SIMILARITY,
            RetinaAligner(detector, RetinaLandmarks(extra)),
            DuoEmbedder(mfn, MobileFaceNet192Embedder(extra), RETINA_WEIGHT2_512),
            ChipScaledQuality(),
        )
    raise ValueError(f"not an ONNX pack: {name!r}")


def optional_liveness(models_dir: Path | None = None) -> OnnxLivenessChecker:
    """The liveness checker for the dlib packs, whose HOG boxes it reframes; it reports
    itself unavailable until the ONNX models are installed."""
    return OnnxLivenessChecker(OnnxModels(models_dir), hog_boxes=True)
