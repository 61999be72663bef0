"""Embeddings of evaluation photos, computed once with the real pipeline and kept on disk.

Each photo is embedded exactly as the service embeds a query: ``FacePipeline.analyse_bytes`` with
the default options (the face nearest the centre). The cache key is the SHA-256 of the image bytes,
inside one file per model pack and *pipeline fingerprint*: a hash of the source of the code that
turns bytes into an embedding (imaging, runner, the pack's detector/aligner/embedder classes and
their settings) and of the versions of the libraries and model packages involved. Any change there
starts a new file, so a stale embedding is never reused; a re-run with nothing changed embeds
nothing.

Missing photos are embedded by a pool of worker processes (``spawn``; one model copy each), and the
file is saved every few hundred photos so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

QUALITY_FIELDS = ("face_size", "yaw", "pitch", "sharpness", "brightness", "detection_score")
"""Columns of :attr:`CachedFace.quality` (face size in original pixels, angles in degrees)."""

_LIBRARIES = ("numpy", "pillow", "dlib-bin", "dlib", "face-recognition-models", "onnxruntime", "onnx")
_SAVE_EVERY = 256


@dataclass(frozen=True)
class CachedFace:
    """The embedding of a photo's chosen face and that face's quality measurements."""

    vector: npt.NDArray[np.float32]
    quality: FloatArray  # QUALITY_FIELDS


def default_cache_dir() -> Path:
    """``Settings.cache_dir``: ``$FACESEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/facesearch/embeddings``."""
    from facesearch.config import Settings

    return Settings().cache_dir


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _plain(value: Any) -> bool:
    """Settings worth hashing: numbers, strings, None and tuples of them (never loaded models)."""
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return isinstance(value, bool | int | float | str | type(None))


def _walk(obj: Any, seen: set[int], depth: int = 0) -> Iterator[tuple[str, str]]:
    """(label, text) of every facesearch object reachable from ``obj``: its source and settings."""
    if id(obj) in seen or depth > 4:
        return
    seen.add(id(obj))
    cls = type(obj)
    if not cls.__module__.startswith("facesearch."):
        return
    try:
        source = inspect.getsource(sys.modules[cls.__module__])
    except (OSError, TypeError, KeyError):
        source = cls.__qualname__
    yield f"{cls.__module__}.{cls.__qualname__}", source
    attrs = getattr(obj, "__dict__", {})
    for name in sorted(attrs):
        value = attrs[name]
        if _plain(value):
            yield f"{cls.__qualname__}.{name}", repr(value)
        else:
            yield from _walk(value, seen, depth + 1)


def pipeline_fingerprint(pack: Any) -> str:
    """16 hex digits that change whenever the embedding of a photo by ``pack`` could change."""
    from facesearch import imaging
    from facesearch.pipeline import base, dlib_onnx, runner

    digest = hashlib.sha256()
    digest.update(f"pack={pack.name}\n".encode())
    # The dlib engine setting is an attribute of the packs' DlibModels, reached by the walk below.
    for module in (imaging, runner, base, dlib_onnx):
        digest.update(inspect.getsource(module).encode())
    seen: set[int] = set()
    for component in (pack.detector, pack.aligner, pack.embedder, pack.quality, pack.fallback_detector):
        for label, text in _walk(component, seen):
            digest.update(f"\n{label}\n{text}".encode())
    for dist in _LIBRARIES:
        digest.update(f"\n{dist}=={_version(dist)}".encode())
    return digest.hexdigest()[:16]


def image_hash(data: bytes) -> str:
    """SHA-256 of the image bytes: the cache key."""
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    """One ``<pack>-<fingerprint>.npz`` of hash -> (embedding, quality) or "no face"."""

    def __init__(self, directory: Path, pack: str, fingerprint: str) -> None:
        self.path = directory / f"{pack}-{fingerprint}.npz"
        self._entries: dict[str, CachedFace | None] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as z:
                rows = zip(z["hashes"], z["vectors"], z["quality"], z["ok"], strict=True)
                for key, vec, qual, ok in rows:
                    self._entries.setdefault(
                        str(key), CachedFace(vec.astype(np.float32), qual.astype(np.float64)) if ok else None
                    )
        except (OSError, ValueError, KeyError):
            return  # an unreadable cache is rebuilt, never trusted

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedFace | None:
        return self._entries[key]

    def put(self, key: str, face: CachedFace | None) -> None:
        self._entries[key] = face
        self._dirty = True

    def save(self) -> None:
        """Write atomically, merging entries another process saved in the meantime."""
        if not self._dirty:
            return
        self._load()
        keys = sorted(self._entries)
        dim = next((f.vector.size for f in self._entries.values() if f is not None), 0)
        vectors = np.zeros((len(keys), dim), dtype=np.float32)
        quality = np.zeros((len(keys), len(QUALITY_FIELDS)), dtype=np.float64)
        ok = np.zeros(len(keys), dtype=np.bool_)
        for i, key in enumerate(keys):
            face = self._entries[key]
            if face is not None:
                vectors[i], quality[i], ok[i] = face.vector, face.quality, True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, hashes=np.array(keys, dtype=str), vectors=vectors, quality=quality, ok=ok)
        os.replace(tmp, self.path)
        self._dirty = False


# --- embedding in worker processes ------------------------------------------------------------

_worker_pipeline: Any = None


def _init_worker(pack: str) -> None:
    global _worker_pipeline
    from facesearch.pipeline import FacePipeline, build_pack

    _worker_pipeline = FacePipeline(build_pack(pack))


def analyse_photo(pipeline: Any, data: bytes) -> CachedFace | None:
    """The chosen face of one photo, as the service would embed it (None: no usable face).

    A photo without a detected face (or that cannot be decoded) is a detection failure; missing
    models raise ``ModelUnavailable`` and are never cached as one.
    """
    from facesearch.errors import FaceSearchError, ModelUnavailable

    try:
        analysis = pipeline.analyse_bytes(data)
    except ModelUnavailable:
        raise
    except FaceSearchError:
        return None
    face = analysis.faces[0]
    q = face.quality
    quality = np.array(
        [q.face_size, q.yaw, q.pitch, q.sharpness, q.brightness, face.detection.score], dtype=np.float64
    )
    return CachedFace(np.asarray(face.embedding, dtype=np.float32).ravel(), quality)


def _embed_file(job: tuple[str, str]) -> tuple[str, CachedFace | None]:
    key, path = job
    return key, analyse_photo(_worker_pipeline, Path(path).read_bytes())


Progress = Callable[[int, int], None]


class PhotoEmbedder:
    """``embedder(path)`` -> embedding or None, backed by the disk cache; ``prepare`` fills it.

    ``prepare(paths)`` hashes every photo and embeds the ones missing from the cache, with
    ``workers`` processes (0: in this process). Calling the embedder on a photo that was not
    prepared embeds it on the spot.
    """

    def __init__(
        self,
        pack: str,
        *,
        cache_dir: Path | None = None,
        workers: int = 2,
        progress: Progress | None = None,
    ) -> None:
        from facesearch.pipeline import build_pack

        self.pack_name = pack
        self.pack = build_pack(pack)
        self.fingerprint = pipeline_fingerprint(self.pack)
        self.cache = EmbeddingCache(cache_dir or default_cache_dir(), pack, self.fingerprint)
        self.workers = max(0, workers)
        self.progress = progress
        self._keys: dict[Path, str] = {}
        self._pipeline: Any = None
        self.embedded = 0  # photos embedded by this object (not found in the cache)
        self.seconds = 0.0  # time spent embedding them

    def key(self, path: Path) -> str:
        if path not in self._keys:
            self._keys[path] = image_hash(path.read_bytes())
        return self._keys[path]

    def _local(self, data: bytes) -> CachedFace | None:
        if self._pipeline is None:
            from facesearch.pipeline import FacePipeline

            self._pipeline = FacePipeline(self.pack)
        return analyse_photo(self._pipeline, data)

    def prepare(self, paths: Iterable[Path]) -> None:
        """Embed every photo of ``paths`` that the cache does not hold yet."""
        jobs: dict[str, Path] = {}
        for path in paths:
            key = self.key(path)
            if key not in self.cache and key not in jobs:
                jobs[key] = path
        if not jobs:
            return
        todo = sorted(jobs.items(), key=lambda kv: str(kv[1]))
        started = time.perf_counter()
        done = 0
        for key, face in self._run(todo):
            self.cache.put(key, face)
            done += 1
            self.embedded += 1
            if done % _SAVE_EVERY == 0:
                self.cache.save()
            if self.progress is not None:
                self.progress(done, len(todo))
        self.cache.save()
        self.seconds += time.perf_counter() - started

    def _run(self, todo: Sequence[tuple[str, Path]]) -> Iterator[tuple[str, CachedFace | None]]:
        if self.workers <= 1 or len(todo) < 8:
            for key, path in todo:
                yield key, self._local(path.read_bytes())
            return
        ctx = get_context("spawn")
        with ctx.Pool(self.workers, initializer=_init_worker, initargs=(self.pack_name,)) as pool:
            jobs = [(key, str(path)) for key, path in todo]
            yield from pool.imap_unordered(_embed_file, jobs, chunksize=8)

    def face(self, path: Path) -> CachedFace | None:
        """The cached face of a photo (embedding it now if it was not prepared)."""
        key = self.key(path)
        if key not in self.cache:
            self.cache.put(key, self._local(path.read_bytes()))
            self.embedded += 1
            self.cache.save()
        return self.cache.get(key)

    def __call__(self, path: Path) -> npt.NDArray[np.float32] | None:
        face = self.face(path)
        return None if face is None else face.vector
