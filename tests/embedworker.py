"""Worker-process side of the test embedding cache (its own module: spawned workers import it
by name, and a module called ``conftest`` is ambiguous when several folders have one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
