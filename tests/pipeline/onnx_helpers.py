"""Helpers for the real-photo pipeline tests: skip without the ONNX models, LFW pairs, labelled boxes,
pair distances and accuracies (embeddings come from embedworker's shared cache)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from embedworker import need_models as need_models  # re-exported for the ONNX tests
from facesearch.domain import Box


def lfw_pairs(faces_dir: Path) -> list[tuple[Path, Path, bool]]:
    """The 1,000 LFW development pairs (500 same, 500 different), read by the eval code."""
    from facesearch.eval.protocols import read_pairs

    lfw = faces_dir / "lfw"
    return [(p.path_a, p.path_b, p.same) for p in read_pairs(lfw / "pairsDevTest.txt", lfw).pairs]


def labelled_boxes(faces_dir: Path) -> dict[Path, list[Box]]:
    """The hand-labelled faces of groups/dlib_training.xml."""
    root = ET.parse(faces_dir / "groups" / "dlib_training.xml").getroot()
    out: dict[Path, list[Box]] = {}
    for image in root.iter("image"):
        boxes = [
            Box(int(b.get("left", 0)), int(b.get("top", 0)), int(b.get("width", 0)), int(b.get("height", 0)))
            for b in image.iter("box")
        ]
        out[faces_dir / "groups" / f"dlib_{image.get('file')}"] = boxes
    return out


def pair_distances(
    pairs: list[tuple[Path, Path, bool]], vecs: dict[Path, np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each pair (inf where a photo had no face) and the labels."""
    d = []
    for a, b, _ in pairs:
        va, vb = vecs[a], vecs[b]
        d.append(np.inf if va is None or vb is None else float(np.linalg.norm(va - vb)))
    return np.array(d), np.array([same for _, _, same in pairs])


def accuracy_at(distances: np.ndarray, same: np.ndarray, limit: float) -> float:
    """Share of pairs judged right when "same" means distance <= limit."""
    return float(((distances <= limit) == same).mean())


def best_accuracy(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(best accuracy, its threshold) over every threshold."""
    order = np.argsort(distances, kind="stable")
    ds, ss = distances[order], same[order]
    tp = np.cumsum(ss)
    fp = np.cumsum(~ss)
    acc = (tp + (len(ss) - ss.sum()) - fp) / len(ss)
    k = int(np.argmax(acc))
    return float(acc[k]), float(ds[k])
