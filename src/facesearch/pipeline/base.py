"""The pipeline's Protocols and the model pack that bundles one of each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from facesearch.domain import Box, Detection, Embedding, Landmarks, Quality, RGBImage
from facesearch.errors import LivenessUnavailable
from facesearch.pipeline.calibration.table import CalibrationTable
from facesearch.pipeline.models_install import INSTALL_COMMAND

if TYPE_CHECKING:
    from facesearch.pipeline.liveness import LivenessScores


class Detector(Protocol):
    """Finds faces (box, score, 5 landmarks) in an RGB image."""

    #: The smallest face (pixels of the image it is given) found without upsampling or zoom:
    #: the pipeline decodes a photo for every-face work so that ``min_face_size`` measures this.
    native_face: float
    #: The most pixels worth decoding a photo to for ``detect_every`` (its scan budget).
    max_work_pixels: int

    def detect(self, image: RGBImage, *, upsample: int) -> list[Detection]: ...

    def detect_every(self, image: RGBImage, *, min_face: float) -> tuple[list[Detection], float]:
        """Every face down to ``min_face`` pixels of ``image``, within the detector's scan budget,
        and the smallest face size (pixels of ``image``) the scan could find."""
        ...

    def locate(self, image: RGBImage, box: Box) -> Detection:
        """Landmarks for a face whose box is already known (crop mode)."""
        ...


class Aligner(Protocol):
    """Cuts the aligned face chip that the embedder expects."""

    def align(self, image: RGBImage, detection: Detection) -> RGBImage: ...


class Embedder(Protocol):
    """Turns aligned chips into embeddings (one row per chip)."""

    dim: int

    def embed(self, chips: Sequence[RGBImage]) -> np.ndarray: ...


class QualityChecker(Protocol):
    """Measures a detected face (size, border, pose, sharpness, brightness)."""

    def assess(self, image: RGBImage, detection: Detection, chip: RGBImage) -> Quality: ...


class LivenessChecker(Protocol):
    """Scores whether a detected face is live (decided by ``liveness.liveness_reason``)."""

    def available(self) -> bool:
        """Whether its models are installed (cheap; loads nothing)."""
        ...

    def check(self, image: RGBImage, detection: Detection) -> LivenessScores: ...


@dataclass(frozen=True)
class ModelPack:
    """One detector, aligner, embedder and quality checker that belong together.

    ``similarity`` maps a raw embedding distance to the [0, 1] similarity scale and
    ``distance_for_similarity`` is its inverse; both live with the pack so a pack's
    calibration is kept in one place. ``calibration`` is the measured table they come from
    (None: a provisional mapping, and no ``max_false_positive_rate``).
    """

    name: str
    detector: Detector
    aligner: Aligner
    embedder: Embedder
    quality: QualityChecker
    similarity: Callable[[float], float]
    distance_for_similarity: Callable[[float], float]
    default_threshold: float
    liveness: LivenessChecker | None = None
    # Asked only when ``detector`` finds no face at all (the dlib packs: the ONNX detector).
    fallback_detector: Detector | None = None
    calibration: CalibrationTable | None = None

    def require_liveness(self) -> LivenessChecker:
        """The pack's installed liveness checker; LivenessUnavailable when it has none."""
        if self.liveness is None or not self.liveness.available():
            raise LivenessUnavailable(
                "liveness was asked for, but no liveness model is installed with this model pack: "
                f"run `{INSTALL_COMMAND}`",
                details={"pack": self.name, "install": INSTALL_COMMAND},
            )
        return self.liveness

    def warm_up(self) -> None:
        """Load every model now and run each once, so the first real photo pays no loading.

        A blank 200x200 image goes through the detector (no face is expected) and a synthetic
        face box with dlib-ordered points through the aligner and the embedder.
        """
        image = np.full((200, 200, 3), 128, dtype=np.uint8)
        self.detector.detect(image, upsample=0)
        points = ((130.0, 80.0), (112.0, 80.0), (70.0, 80.0), (88.0, 80.0), (100.0, 115.0))
        face = Detection(box=Box(50, 50, 100, 100), score=1.0, landmarks=Landmarks(points))
        self.embedder.embed([self.aligner.align(image, face)])

    def embed_one(self, chip: RGBImage) -> Embedding:
        """The embedding of one aligned chip as a float32 vector."""
        out = self.embedder.embed([chip])
        return np.asarray(out[0], dtype=np.float32)
