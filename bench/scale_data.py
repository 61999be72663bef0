"""Data for bench/scale.py: real LFW dlib embeddings, a Gaussian model fitted to them, probe photos.

Synthetic galleries: real dlib descriptors of the LFW development-test people (3,699 faces of 1,711
people, read from the embedding cache that `facesearch eval` fills, keyed by the SHA-256 of each
photo; computed here with the dlib pipeline when the cache is missing) are fitted with a two-level
Gaussian model, as in PLDA: identity centres ~ N(mu, S_between) and each face = its centre +
N(0, S_within), both full 128x128 covariances. S_within is the pooled covariance of faces around
their person's mean (people with 2+ photos); S_between is the covariance of person means minus the
within part each mean still carries (mean of S_within / n_p), its negative eigenvalues clipped to 0.
`fit_report` compares distances of real and synthetic pairs (same person, different persons).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

FACES_ENV = "FACESEARCH_FACES_DIR"
DEFAULT_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
CACHE_ENV = "FACESEARCH_CACHE_DIR"
PROBE_SIZE = (640, 480)
PROBES = ("obama1.jpg", "alex_lacamoire1.jpg")  # of people/obama and people/alex_lacamoire


def faces_dir(arg: str | None = None) -> Path:
    """--faces, else $FACESEARCH_FACES_DIR, else ../shared/faces; exits when it is missing."""
    path = Path(arg or os.environ.get(FACES_ENV) or str(DEFAULT_FACES)).expanduser().resolve()
    if not (path / "lfw").is_dir() or not (path / "people").is_dir() or not (path / "probes").is_dir():
        sys.exit(
            f"bench: face photos not found at {path} (need lfw/, people/ and probes/ there); "
            f"pass --faces DIR or set {FACES_ENV}"
        )
    return path


@dataclass(frozen=True)
class RealSet:
    """Real descriptors: vectors[i] of person names[labels[i]], in LFW file order."""

    vectors: np.ndarray
    labels: np.ndarray
    names: list[str]
    source: str


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facesearch" / "embeddings"


def lfw_embeddings(faces: Path, pack: str = "dlib") -> RealSet:
    """Descriptors of every LFW photo in which the pipeline found a face."""
    paths = sorted((faces / "lfw").glob("*/*.jpg"))
    hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    found: dict[str, np.ndarray] = {}
    source = ""
    caches = sorted(_cache_dir().glob(f"{pack}-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for cache in caches:
        if not cache.name[len(pack) + 1 :].split(".")[0].isalnum():
            continue
        try:
            with np.load(cache, allow_pickle=False) as z:
                table = {str(h): v for h, v, ok in zip(z["hashes"], z["vectors"], z["ok"], strict=True) if ok}
        except (OSError, ValueError, KeyError):
            continue
        if sum(h in table for h in hashes) >= 0.9 * len(hashes):
            found, source = table, f"embedding cache {cache.name}"
            break
    if not found:
        found, source = _compute(faces, paths, hashes, pack), "computed with the dlib pipeline"
    vecs, labels, names, index = [], [], [], {}
    for p, h in zip(paths, hashes, strict=True):
        if h not in found:
            continue
        name = p.parent.name
        labels.append(index.setdefault(name, len(index)))
        vecs.append(np.asarray(found[h], dtype=np.float64))
        if len(names) < len(index):
            names.append(name)
    return RealSet(np.stack(vecs), np.array(labels, dtype=np.int64), names, source)


def _compute(faces: Path, paths: list[Path], hashes: list[str], pack: str) -> dict[str, np.ndarray]:
    from facesearch.errors import FaceSearchError
    from facesearch.pipeline import FacePipeline, build_pack

    print(f"bench: no {pack} embedding cache; embedding {len(paths)} LFW photos (a few minutes)", flush=True)
    pipeline = FacePipeline(build_pack(pack))
    out = {}
    for p, h in zip(paths, hashes, strict=True):
        try:
            out[h] = pipeline.analyse_bytes(p.read_bytes()).faces[0].embedding
        except FaceSearchError:
            pass
    return out


def _sqrt_psd(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return np.asarray(v * np.sqrt(np.clip(w, 0.0, None)))


@dataclass(frozen=True)
class FittedModel:
    """Identity centres ~ N(mean, B B^T), faces = centre + N(0, W W^T)."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray

    @classmethod
    def fit(cls, real: RealSet) -> FittedModel:
        x, y = real.vectors, real.labels
        people = np.unique(y)
        counts = np.bincount(y, minlength=len(people))
        means = np.stack([x[y == p].mean(axis=0) for p in people])
        multi = counts[y] >= 2
        dev = x[multi] - means[y[multi]]
        dof = int(multi.sum()) - int((counts >= 2).sum())
        s_within = dev.T @ dev / dof
        mu = means.mean(axis=0)
        centred = means - mu
        s_means = centred.T @ centred / (len(people) - 1)
        s_between = s_means - s_within * float(np.mean(1.0 / counts))
        return cls(mu, _sqrt_psd(s_between), _sqrt_psd(s_within))

    def centres(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal((n, len(self.mean)))
        return np.asarray(self.mean + z @ self.between.T)

    def faces(self, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
        z = rng.standard_normal(centres.shape)
        return np.asarray(centres + z @ self.within.T, dtype=np.float32)


def _pair_distances(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, pairs: int, threshold: float
) -> dict[str, float]:
    same_d, diff_d = [], []
    groups: dict[int, list[int]] = {}
    for i, lab in enumerate(y.tolist()):
        groups.setdefault(lab, []).append(i)
    multi = [g for g in groups.values() if len(g) >= 2]
    while len(diff_d) < pairs:
        g = multi[rng.integers(len(multi))]
        a, b = rng.choice(len(g), 2, replace=False)
        same_d.append(float(np.linalg.norm(x[g[a]] - x[g[b]])))
        i, j = rng.integers(len(y), size=2)
        if y[i] != y[j]:
            diff_d.append(float(np.linalg.norm(x[i] - x[j])))
    s, d = np.array(same_d), np.array(diff_d)
    return {
        "same_p50": float(np.median(s)),
        "same_p95": float(np.percentile(s, 95)),
        "diff_p50": float(np.median(d)),
        "diff_p01": float(np.percentile(d, 1)),
        "norm_p50": float(np.median(np.linalg.norm(x, axis=1))),
        "same_under_threshold": float(np.mean(s <= threshold)),
        "diff_under_threshold": float(np.mean(d <= threshold)),
    }


def fit_report(real: RealSet, model: FittedModel, threshold: float, seed: int = 0) -> dict[str, Any]:
    """Distances of real and synthetic pairs (same / different person), and shares under threshold."""
    rng = np.random.default_rng(seed)
    centres = model.centres(rng, len(real.names))
    syn = model.faces(rng, centres[real.labels])  # as many photos per person as LFW has
    out: dict[str, Any] = {}
    for name, x in (("real", real.vectors), ("synthetic", syn)):
        stats = _pair_distances(
            np.asarray(x, np.float64), real.labels, np.random.default_rng(seed), 5000, threshold
        )
        out[name] = {k: round(v, 4) for k, v in stats.items()}
    return out


def probe_photos(faces: Path) -> list[tuple[str, bytes]]:
    """640x480 JPEGs (quality 90) cropped 4:3 around the face of each probe photo, made in memory."""
    from facesearch.imaging import decode_image
    from facesearch.pipeline import FacePipeline, build_pack

    pipeline = FacePipeline(build_pack("dlib"))
    out = []
    for name in PROBES:
        raw = (faces / "probes" / name).read_bytes()
        pixels = decode_image(raw).pixels
        cx, cy = pipeline.analyse_bytes(raw).faces[0].detection.box.center
        h, w = pixels.shape[:2]
        tw, th = PROBE_SIZE
        cw, ch = (round(h * tw / th), h) if w * th > h * tw else (w, round(w * th / tw))
        x0 = int(min(max(round(cx - cw / 2), 0), w - cw))
        y0 = int(min(max(round(cy - ch / 2), 0), h - ch))
        crop = Image.fromarray(np.ascontiguousarray(pixels[y0 : y0 + ch, x0 : x0 + cw]))
        buf = io.BytesIO()
        crop.resize(PROBE_SIZE, Image.Resampling.LANCZOS).save(buf, "JPEG", quality=90)
        out.append((name, buf.getvalue()))
    return out


def people_photos(faces: Path) -> list[tuple[str, bytes]]:
    """(person folder name, photo bytes) of the small gallery of named people."""
    paths = sorted(p for p in (faces / "people").glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [(p.parent.name, p.read_bytes()) for p in paths]
