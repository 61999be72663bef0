"""Passive liveness: is the face in the photo a live person, or a printed or displayed one?

The ONNX pack's liveness classifier looks at the face with its surroundings (the detector's
box enlarged 2.7 times, resized to 128x128, raw 0-255 pixels) and gives three classes;
class 0 is "live" (it dominates on genuine photos). The eye classifier looks at each eye
(24x24 grey, / 255; class 0 is "closed"). Head angles come from the 5 landmarks
(``quality.pose_from_landmarks``): the package's pose model failed the mirror test (its yaw
changed sign on mirrored photos in only 86-88% of LFW faces turned more than 15 degrees,
against 100% for the landmark geometry), so it is not used.

Every threshold is in :class:`LivenessThresholds`, each with the measurement that chose it
(``bench/liveness.py``). This is not a certified presentation-attack detector: it has only
been tested on simulated print and screen attacks made from LFW photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from facesearch.domain import Box, Detection, Quality, RGBImage
from facesearch.errors import LivenessFailed, LivenessUnavailable, ModelUnavailable
from facesearch.pipeline.onnx.detect import OnnxDetection, RfbDetector, box_from_hog
from facesearch.pipeline.onnx.models import OnnxModels

if TYPE_CHECKING:
    from facesearch.pipeline.runner import Analysis

LIVENESS_SIZE = 128
LIVENESS_CONTEXT = 2.7  # the box is enlarged this much around its centre (as in the JavaScript)
LIVE_CLASS = 0
EYE_SIZE = 24
EYE_PADDING = 1.6  # eye crop side = eye width (outer to inner corner) x this
EYE_CLOSED_CLASS = 0
# Channel order fed to the liveness model, chosen by bench/liveness.py, which measures both:
# B,G,R separates genuine LFW photos from simulated attacks better (ROC AUC 0.964 against
# 0.926 for R,G,B, which the JavaScript feeds), and at a live score of 0.5 R,G,B would
# refuse 59% of genuine photos.
LIVENESS_CHANNELS = "bgr"

REASONS = (
    "FACE_NOT_LIVE",
    "EYES_CLOSED",
    "FACE_ANGLE_TOO_LARGE",
    "FACE_TOO_SMALL",
    "FACE_CLOSE_TO_BORDER",
    "TOO_MANY_FACES",
)


@dataclass(frozen=True)
class LivenessThresholds:
    """Where a face stops counting as live: the one place for these numbers.

    Measured with ``bench/liveness.py`` on the 1,549 LFW dev photos and their simulated
    attacks; the threshold search used the even half, figures hold on the odd half.
    ``min_live_score``: at 0.5, 80% of genuine photos passed every rule, and 17% of print
    and 1.8% of screen attacks passed; 0.1 let twice the prints through (32%) for 5 more
    points of genuine photos, 0.8 halved them (10%) for 4.5 points fewer.
    ``max_eye_closed``: both eyes over 0.9 refused 2.6% of genuine photos, people looking
    down or squinting. ``rival_ratio``: a second face at least 0.8 times as big as the
    chosen one refused 4.9% of LFW photos (0.5: 11%, mostly people beside the subject).
    ``min_border_ratio``: as the enrolment gate (0.5% of LFW photos refused).
    ``min_face_px``: 128 / 2.7, the face size at which the model's input is not upsampled.
    Angles: from the landmarks, 3.9% of LFW photos refused (99th percentile of |yaw|: 37).
    """

    min_live_score: float = 0.5
    max_eye_closed: float = 0.9  # both eyes at least this likely closed -> EYES_CLOSED
    max_abs_yaw: float = 35.0
    max_abs_pitch: float = 35.0
    min_face_px: int = 48  # in the analysed image
    min_border_ratio: float = 0.05  # border distance / face size; cut-off faces always fail
    rival_ratio: float = 0.8  # another face at least this big (relative) -> TOO_MANY_FACES


DEFAULT_THRESHOLDS = LivenessThresholds()


@dataclass(frozen=True)
class LivenessScores:
    """What the liveness models measured on one face (the decision is ``liveness_reason``)."""

    live: float  # probability of the "live" class
    eyes_closed: tuple[float, float]  # probability each eye is closed (image left, image right)
    face_px: int  # face size in the analysed image's pixels
    other_faces: tuple[float, ...] = ()  # sizes of the other faces found, relative to this one

    def to_dict(self) -> dict[str, Any]:
        return {
            "live": round(self.live, 4),
            "eyes_closed": [round(p, 4) for p in self.eyes_closed],
            "face_px": self.face_px,
            "other_faces": [round(r, 2) for r in self.other_faces],
        }


def liveness_reason(
    scores: LivenessScores,
    quality: Quality,
    *,
    single: bool = True,
    thresholds: LivenessThresholds = DEFAULT_THRESHOLDS,
) -> str | None:
    """The first reason the face fails liveness, or None when it passes.

    Geometry first (a face too small, cut off or turned cannot be judged), then the models.
    ``single``: one face is expected (identify, enrol): a second face of comparable size
    fails with TOO_MANY_FACES.
    """
    t = thresholds
    if single and any(r >= t.rival_ratio for r in scores.other_faces):
        return "TOO_MANY_FACES"
    if scores.face_px < t.min_face_px:
        return "FACE_TOO_SMALL"
    if quality.cut_off or quality.border_distance < t.min_border_ratio * quality.face_size:
        return "FACE_CLOSE_TO_BORDER"
    if abs(quality.yaw) > t.max_abs_yaw or abs(quality.pitch) > t.max_abs_pitch:
        return "FACE_ANGLE_TOO_LARGE"
    if min(scores.eyes_closed) >= t.max_eye_closed:
        return "EYES_CLOSED"
    if scores.live < t.min_live_score:
        return "FACE_NOT_LIVE"
    return None


def require_live(analysis: Analysis, *, single: bool) -> None:
    """Raise LivenessFailed when a face of ``analysis`` (analysed with liveness) is not judged live.

    ``single``: one face is wanted (identify, enrol), so a second face of comparable size
    fails with TOO_MANY_FACES. ``details``: the first face's ``reason`` and, per failing face,
    its box, reason and scores.
    """
    scores = tuple(analysis.liveness)
    if len(scores) != len(analysis.faces):
        raise LivenessUnavailable("liveness was asked for, but the faces were not scored")
    failed = []
    for face, score in zip(analysis.faces, scores, strict=True):
        why = liveness_reason(score, face.quality, single=single)
        if why is not None:
            failed.append({"box": face.detection.box.to_dict(), "reason": why, "scores": score.to_dict()})
    if failed:
        reason = failed[0]["reason"]
        raise LivenessFailed(
            f"liveness check failed: {str(reason).lower().replace('_', ' ')}",
            details={"reason": reason, "faces": failed},
        )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    out: np.ndarray = e / e.sum()
    return out


def context_box(box: Box, width: int, height: int, scale: float = LIVENESS_CONTEXT) -> Box:
    """The box enlarged ``scale`` times about its centre, shifted (and if need be shrunk) to fit."""
    s = min((height - 1) / max(1, box.height), (width - 1) / max(1, box.width), scale)
    w, h = box.width * s, box.height * s
    cx, cy = box.center
    left, top = cx - w / 2, cy - h / 2
    left = min(max(left, 0.0), width - 1 - w)
    top = min(max(top, 0.0), height - 1 - h)
    return Box(int(max(0.0, left)), int(max(0.0, top)), max(1, int(w)), max(1, int(h)))


def liveness_input(image: RGBImage, box: Box, channels: str = LIVENESS_CHANNELS) -> np.ndarray:
    """The 1x3x128x128 float32 tensor of the liveness model for a face box."""
    h, w = image.shape[:2]
    region = context_box(box, w, h)
    crop = Image.fromarray(image).crop((region.left, region.top, region.right, region.bottom))
    pixels = np.asarray(crop.resize((LIVENESS_SIZE, LIVENESS_SIZE), Image.Resampling.BILINEAR))
    x = pixels.astype(np.float32)
    if channels == "bgr":
        x = x[..., ::-1]
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def eye_inputs(image: RGBImage, points68: np.ndarray) -> list[np.ndarray]:
    """The two 1x1x24x24 eye tensors (image-left eye, image-right eye)."""
    grey = Image.fromarray(image).convert("L")
    out = []
    for outer, inner, centre in ((36, 39, [37, 38, 40, 41]), (42, 45, [43, 44, 46, 47])):
        cx, cy = points68[centre].mean(axis=0)
        side = max(2.0, abs(points68[inner, 0] - points68[outer, 0]) * EYE_PADDING)
        box = (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
        eye = grey.crop(box).resize((EYE_SIZE, EYE_SIZE), Image.Resampling.BILINEAR)
        out.append((np.asarray(eye, dtype=np.float32) / 255.0)[None, None])
    return out


def pose_head_yaw(models: OnnxModels, image: RGBImage, box: Box, channels: str = "rgb") -> float:
    """Yaw in degrees from the package's pose model (66 bins of 3 degrees from -99).

    Measurement only: on mirrored LFW photos its sign flipped in 86% of faces turned more
    than 15 degrees (RGB input; 69% with BGR), so FACE_ANGLE_TOO_LARGE uses the landmarks.
    """
    h, w = image.shape[:2]
    pad_w, pad_h = box.width / 4, box.height / 4
    region = (
        max(0, int(box.left - pad_w)),
        max(0, int(box.top - pad_h)),
        min(w, int(box.right + pad_w)),
        min(h, int(box.bottom + pad_h)),
    )
    crop = Image.fromarray(image).crop(region).resize((224, 224), Image.Resampling.BILINEAR)
    x = np.asarray(crop, dtype=np.float32) / 255.0
    if channels == "bgr":
        x = x[..., ::-1]
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    normalised = ((x - mean) / std).astype(np.float32)
    yaw_logits = models.run("pose", np.ascontiguousarray(normalised.transpose(2, 0, 1)[None]))[0]
    return float((_softmax(yaw_logits[0]) * np.arange(66)).sum() * 3 - 99)


class OnnxLivenessChecker:
    """Runs the liveness and eye models on a detected face (any pack's detection)."""

    def __init__(
        self, models: OnnxModels, detector: RfbDetector | None = None, *, hog_boxes: bool = False
    ) -> None:
        self._models = models
        self._detector = detector or RfbDetector(models)
        self._hog_boxes = hog_boxes  # detections come from dlib's HOG detector: reframe them

    def available(self) -> bool:
        """Whether the model files are installed."""
        return self._models.installed()

    def _onnx_face(self, image: RGBImage, detection: Detection) -> tuple[Box, np.ndarray]:
        """The ONNX detector's box and the 68 points of the face."""
        if isinstance(detection, OnnxDetection) and detection.points68:
            return detection.box, np.asarray(detection.points68, dtype=np.float64)
        box = box_from_hog(detection.box) if self._hog_boxes else detection.box
        return box, self._detector.landmarks68(image, box)

    def check(self, image: RGBImage, detection: Detection) -> LivenessScores:
        """Scores of one face of ``image``."""
        try:
            box, points = self._onnx_face(image, detection)
            (logits,) = self._models.run("liveness", liveness_input(image, box))
            closed = []
            for tensor in eye_inputs(image, points):
                (eye,) = self._models.run("eye", tensor)
                closed.append(float(_softmax(eye[0])[EYE_CLOSED_CLASS]))
        except ModelUnavailable as exc:
            raise LivenessUnavailable(
                f"liveness needs the ONNX models: {exc.message}", details=exc.details
            ) from exc
        live = float(_softmax(logits[0])[LIVE_CLASS])
        return LivenessScores(
            live=live,
            eyes_closed=(closed[0], closed[1]),
            face_px=int(min(detection.box.width, detection.box.height)),
        )
