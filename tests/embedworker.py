"""The test embedding cache and its worker processes (its own module: spawned workers import it
by name, and a module called ``conftest`` is ambiguous when several folders have one)."""

from __future__ import annotations

import hashlib
import os
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".pytest_cache" / "facesearch-embeddings"

_worker_pipeline: object = None


def init_worker() -> None:
    global _worker_pipeline
    from facesearch.pipeline import FacePipeline, build_pack

    _worker_pipeline = FacePipeline(build_pack("dlib"))


def embed_path(path: str) -> tuple[str, np.ndarray | None]:
    from facesearch.errors import FaceSearchError
    from facesearch.pipeline import FacePipeline

    assert isinstance(_worker_pipeline, FacePipeline)
    try:
        analysis = _worker_pipeline.analyse_bytes(Path(path).read_bytes())
    except FaceSearchError:
        return path, None
    return path, analysis.faces[0].embedding


def _code_fingerprint() -> str:
    """Changes whenever the pipeline or imaging code changes, so cached embeddings go stale."""
    digest = hashlib.sha256()
    src = REPO / "src" / "facesearch"
    for file in sorted([*(src / "pipeline").glob("*.py"), src / "imaging.py"]):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Embeds each photo once per run (2 worker processes), kept on disk between local runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._vectors: dict[str, np.ndarray | None] = {}
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        self._file = CACHE_DIR / f"dlib-{_code_fingerprint()}.npz"
        if self._file.is_file():
            with np.load(self._file, allow_pickle=False) as z:
                for key, vec, ok in zip(z["paths"], z["vectors"], z["ok"], strict=True):
                    self._vectors[str(key)] = vec.astype(np.float32) if ok else None

    def get_many(self, paths: list[Path]) -> dict[Path, np.ndarray | None]:
        """Embeddings of the main face of each photo (None where no face was found)."""
        keys = [str(p.relative_to(self.root)) for p in paths]
        missing = sorted({k for k in keys if k not in self._vectors})
        if missing:
            with get_context("spawn").Pool(min(2, os.cpu_count() or 1), initializer=init_worker) as pool:
                for path, vec in pool.imap_unordered(
                    embed_path, [str(self.root / k) for k in missing], chunksize=16
                ):
                    self._vectors[str(Path(path).relative_to(self.root))] = vec
            self._save()
        return {p: self._vectors[k] for p, k in zip(paths, keys, strict=True)}

    def _save(self) -> None:
        keys = sorted(self._vectors)
        vectors = np.stack(
            [self._vectors[k] if self._vectors[k] is not None else np.zeros(128) for k in keys]
        )
        ok = np.array([self._vectors[k] is not None for k in keys])
        tmp = self._file.with_suffix(".tmp.npz")
        np.savez(tmp, paths=np.array(keys), vectors=vectors.astype(np.float32), ok=ok)
        os.replace(tmp, self._file)
