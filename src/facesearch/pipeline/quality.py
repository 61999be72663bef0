"""Quality measurements of a detected face, from its box, landmarks and aligned chip."""

from __future__ import annotations

import math

import numpy as np

from facesearch.domain import Detection, Quality, RGBImage

# Nose base sits about this many inter-ocular distances in front of the eye line
# (average adult head geometry); it turns the nose's sideways offset into a yaw angle.
_NOSE_DEPTH = 0.55
# In a frontal face the nose base is about this many inter-ocular distances below the
# eye line (measured on frontal LFW faces with the 5-point predictor).
_NOSE_DROP_FRONTAL = 0.62


def _grey(chip: RGBImage) -> np.ndarray:
    rgb = chip.astype(np.float32)
    grey: np.ndarray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return grey


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low on blurred faces."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    return float(lap.var())


def pose_from_landmarks(points: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the 5 landmarks, after removing in-plane roll.

    A rough geometric estimate: the nose base's offset from the eye midpoint, in
    inter-ocular distances, against an average head. Good for gating large angles,
    not for measuring them precisely.
    """
    eye_a = np.mean(np.asarray(points[0:2], dtype=np.float64), axis=0)
    eye_b = np.mean(np.asarray(points[2:4], dtype=np.float64), axis=0)
    nose = np.asarray(points[4], dtype=np.float64)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    axis = right - left
    iod = float(np.hypot(*axis))
    if iod < 1e-6:
        return 0.0, 0.0
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])
    rel = nose - (left + right) / 2.0
    sideways = float(rel @ ux) / iod
    down = float(rel @ uy) / iod
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, sideways / _NOSE_DEPTH))))
    # Turning the head shrinks the apparent inter-ocular distance by cos(yaw).
    down *= math.cos(math.radians(yaw))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, (down - _NOSE_DROP_FRONTAL) / _NOSE_DEPTH))))
    return yaw, pitch


class BasicQualityChecker:
    """Size, border distance, pose, sharpness and brightness of one face."""

    def assess(self, image: RGBImage, detection: Detection, chip: RGBImage) -> Quality:
        h, w = image.shape[:2]
        b = detection.box
        border = min(b.left, b.top, w - b.right, h - b.bottom)
        yaw, pitch = pose_from_landmarks(detection.landmarks.points)
        grey = _grey(chip)
        return Quality(
            face_size=int(min(b.width, b.height)),
            border_distance=int(border),
            cut_off=border < 0,
            yaw=yaw,
            pitch=pitch,
            sharpness=laplacian_variance(grey),
            brightness=float(grey.mean()),
        )
