"""Shared fixtures: where the real photos are, and embeddings computed once per run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

from embedworker import embed_path, init_worker

REPO = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("FACESEARCH_FACES_DIR", REPO.parent / "shared" / "faces")).resolve()
CACHE_DIR = REPO / ".pytest_cache" / "facesearch-embeddings"


def _need_faces() -> Path:
    if not (FACES_DIR / "MANIFEST.md").is_file():
        pytest.skip(
            f"real face photos not found at {FACES_DIR}: put the shared data there "
            "(../shared/faces beside the repo) or set FACESEARCH_FACES_DIR"
        )
    return FACES_DIR


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The shared photo folder; tests using it skip with a message when it is absent."""
    return _need_faces()


@pytest.fixture(scope="session")
def dlib_pipeline() -> object:
    """The real dlib pipeline, built once per test session."""
    from facesearch.pipeline import FacePipeline, build_pack

    return FacePipeline(build_pack("dlib"))


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


@pytest.fixture(scope="session")
def embedding_cache(faces_dir: Path) -> Iterator[EmbeddingCache]:
    """Session-wide cache of real dlib embeddings of shared photos."""
    yield EmbeddingCache(faces_dir)
