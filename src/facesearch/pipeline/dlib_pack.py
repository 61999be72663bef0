"""The default model pack: dlib's HOG detector, 5-point landmarks and ResNet descriptor.

Weights come from the PyPI package ``face-recognition-models``; its folder is found with
``importlib.util.find_spec`` because importing it breaks on recent setuptools. The
68-point predictor in that package is never used (its training data bars commercial use).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.domain import Box, Detection, Landmarks, RGBImage
from facesearch.errors import ModelUnavailable
from facesearch.imaging import resize_to_fit

log = logging.getLogger(__name__)

MODEL_PACKAGE = "face-recognition-models"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# HOG detections scoring below this are dropped (measured on groups/ and noface/: see README).
HOG_SCORE_FLOOR = 0.0
# HOG's window: faces from about 80 pixels at 1:1, 40 with one 2x upsampling.
HOG_FACE = 80
# Every face of a photo: HOG scans at most this many pixels (an upsampled image counts 4x),
# about 1.6 s on this machine's cores (~100 ms per megapixel); a larger photo is scanned
# downscaled and its answer says the smallest face that scan could find.
MAX_HOG_PIXELS = 16_000_000
# Which engine runs the descriptor network (``Settings.dlib_engine``): "onnxruntime" (dlib's weights
# in an ONNX graph, pipeline/dlib_onnx.py: the same descriptor to ~1e-6, about 15x faster), "dlib"
# (dlib-bin's own), or "auto" (onnxruntime, and dlib with a warning if the graph cannot be built).
ENGINE_ENV = "FACESEARCH_DLIB_ENGINE"  # the environment variable of that setting
ENGINES = ("auto", "onnxruntime", "dlib")


def models_dir() -> Path:
    """The ``models/`` folder of face-recognition-models, without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        candidate = Path(loc) / "models"
        if candidate.is_dir():
            return candidate
    raise ModelUnavailable(
        f"the dlib model files are missing: install the PyPI package '{MODEL_PACKAGE}'",
        details={"package": MODEL_PACKAGE},
    )


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelUnavailable(
            "dlib is not installed: install the PyPI package 'dlib-bin'", details={"package": "dlib-bin"}
        ) from exc
    return dlib


class DlibModels:
    """Loads the dlib models once, on first use, and shares them within the process.

    ``engine``: what runs the descriptor network (see ENGINES); None reads ``Settings.dlib_engine``
    from the environment.
    """

    def __init__(self, directory: Path | None = None, engine: str | None = None) -> None:
        if engine is None:
            from facesearch.config import Settings

            engine = Settings().dlib_engine
        self.engine = engine.strip().lower() or "auto"
        self._directory = directory
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any, Any] | None = None

    def get(self) -> tuple[Any, Any, Any, Any]:
        """(dlib module, HOG detector, 5-point shape predictor, face descriptor model)."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def _load(self) -> tuple[Any, Any, Any, Any]:
        dlib = _import_dlib()
        directory = self._directory or models_dir()
        paths = [directory / SHAPE_MODEL, directory / DESCRIPTOR_MODEL]
        for path in paths:
            if not path.is_file():
                raise ModelUnavailable(
                    f"model file {path.name} not found in {directory}: reinstall '{MODEL_PACKAGE}'",
                    details={"package": MODEL_PACKAGE, "file": path.name},
                )
        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(str(paths[0]))
        descriptor = _descriptor(dlib, paths[1], self.engine)
        return dlib, detector, predictor, descriptor


class DlibBinDescriptor:
    """dlib-bin's own descriptor network (one core, about 60 ms a face)."""

    engine = "dlib"

    def __init__(self, dlib: Any, path: Path) -> None:
        self._model = dlib.face_recognition_model_v1(str(path))

    def compute(self, chips: np.ndarray) -> np.ndarray:
        rows = [np.asarray(self._model.compute_face_descriptor(chip), dtype=np.float32) for chip in chips]
        return np.stack(rows)


def _descriptor(dlib: Any, path: Path, engine: str) -> Any:
    """The descriptor engine named by the ``dlib_engine`` setting (see ENGINES)."""
    if engine not in ENGINES:
        raise ModelUnavailable(
            f"{ENGINE_ENV}={engine!r} is not one of {', '.join(ENGINES)}", details={"setting": ENGINE_ENV}
        )
    if engine == "dlib":
        return DlibBinDescriptor(dlib, path)
    from facesearch.pipeline.dlib_onnx import DlibOnnxDescriptor

    try:
        return DlibOnnxDescriptor(path)
    except Exception as exc:  # a missing onnx package or an unknown file: dlib still works
        if engine == "onnxruntime":
            raise ModelUnavailable(
                f"cannot run {path.name} with onnxruntime: {exc}", details={"setting": ENGINE_ENV}
            ) from exc
        log.warning("dlib descriptor on dlib-bin (about 15x slower): onnxruntime graph failed: %s", exc)
        return DlibBinDescriptor(dlib, path)


class DlibDetector:
    """HOG frontal detector with a score floor, followed by the 5-point predictor."""

    def __init__(self, models: DlibModels, score_floor: float = HOG_SCORE_FLOOR) -> None:
        self._models = models
        self._score_floor = score_floor

    def detect(self, image: RGBImage, *, upsample: int) -> list[Detection]:
        dlib, detector, predictor, _ = self._models.get()
        rects, scores, _kinds = detector.run(image, upsample, self._score_floor)
        found: list[Detection] = []
        for rect, score in zip(rects, scores, strict=True):
            shape = predictor(image, rect)
            points = tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(5))
            box = Box(int(rect.left()), int(rect.top()), int(rect.width()), int(rect.height()))
            found.append(Detection(box=box, score=float(score), landmarks=Landmarks(points)))
        del dlib
        return found

    #: The smallest face, in pixels of the image, that HOG finds without upsampling.
    native_face = float(HOG_FACE)
    #: The largest image worth decoding for it (``MAX_HOG_PIXELS``).
    max_work_pixels = MAX_HOG_PIXELS

    def detect_every(self, image: RGBImage, *, min_face: float) -> tuple[list[Detection], float]:
        """Every face down to ``min_face`` pixels (one upsampling below HOG_FACE), within
        MAX_HOG_PIXELS, and the smallest face size the scan could find."""
        h, w = image.shape[:2]
        upsample = 1 if min_face < HOG_FACE and w * h * 4 <= MAX_HOG_PIXELS else 0
        factor = min(1.0, (MAX_HOG_PIXELS / (w * h * 4**upsample)) ** 0.5)
        if factor >= 1.0:
            return self.detect(image, upsample=upsample), HOG_FACE / 2**upsample
        small = resize_to_fit(image, max(1, round(max(w, h) * factor)))
        k = w / small.shape[1]
        found = [
            self.locate(
                image, Box(round(b.left * k), round(b.top * k), round(b.width * k), round(b.height * k))
            )
            for b in (d.box for d in self.detect(small, upsample=upsample))
        ]
        return found, HOG_FACE * k / 2**upsample

    def locate(self, image: RGBImage, box: Box) -> Detection:
        """Landmarks for a face whose box is already known (crop mode: no detection)."""
        dlib, _, predictor, _ = self._models.get()
        rect = dlib.rectangle(box.left, box.top, box.right, box.bottom)
        shape = predictor(image, rect)
        points = tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(5))
        return Detection(box=box, score=1.0, landmarks=Landmarks(points))


class DlibAligner:
    """dlib's ``get_face_chip``: a 150x150 chip, eyes levelled, 25% padding."""

    def __init__(self, models: DlibModels) -> None:
        self._models = models

    def align(self, image: RGBImage, detection: Detection) -> RGBImage:
        dlib, _, _, _ = self._models.get()
        b = detection.box
        rect = dlib.rectangle(b.left, b.top, b.right, b.bottom)
        parts = dlib.points()
        for x, y in detection.landmarks.points:
            parts.append(dlib.point(int(round(x)), int(round(y))))
        shape = dlib.full_object_detection(rect, parts)
        chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.ascontiguousarray(chip, dtype=np.uint8)


class DlibEmbedder:
    """The 128-d ResNet descriptor (Euclidean distance; about 0.6 between different people)."""

    dim = 128

    def __init__(self, models: DlibModels) -> None:
        self._models = models

    def embed(self, chips: Sequence[RGBImage]) -> np.ndarray:
        _, _, _, descriptor = self._models.get()
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([np.asarray(chip, dtype=np.uint8) for chip in chips])
        out: np.ndarray = descriptor.compute(batch)
        return out
