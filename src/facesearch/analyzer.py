"""Where photos are turned into faces: in this process, or in a pool of worker processes.

dlib computes on one core and holds the GIL, so the HTTP server sends detection and
embedding to worker processes (one model copy each) to keep both cores busy while
index search and SQL stay responsive in the main process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Protocol

from facesearch.pipeline import Analysis, FaceChoice, FacePipeline, ModelPack, build_pack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyseRequest:
    """One photo to analyse, and how."""

    pack: str
    data: bytes
    max_bytes: int
    max_pixels: int
    every_face: bool = False
    choice: FaceChoice = "central"
    crop: bool = False
    min_face_size: int = 32
    max_faces: int | None = None
    crop_output: tuple[int | None, float] | None = None
    liveness: bool = False  # also score liveness (Analysis.liveness), in the worker with the models


class Analyzer(Protocol):
    """Runs the pipeline for a request and returns its Analysis (raising FaceSearchError)."""

    def analyse(self, request: AnalyseRequest) -> Analysis: ...

    def close(self) -> None: ...


def _run(pipeline: FacePipeline, r: AnalyseRequest) -> Analysis:
    return pipeline.analyse_bytes(
        r.data,
        max_bytes=r.max_bytes,
        max_pixels=r.max_pixels,
        every_face=r.every_face,
        choice=r.choice,
        crop=r.crop,
        min_face_size=r.min_face_size,
        max_faces=r.max_faces,
        crop_output=r.crop_output,
        liveness=r.liveness,
    )


class LocalAnalyzer:
    """Runs the pipeline in the calling thread (CLI, tests, single-user use)."""

    def __init__(self, packs: Callable[[str], ModelPack] = build_pack) -> None:
        self._packs = packs
        self._pipelines: dict[str, FacePipeline] = {}
        self._lock = threading.Lock()

    def pipeline(self, pack: str) -> FacePipeline:
        """The pipeline of a pack, built once."""
        with self._lock:
            if pack not in self._pipelines:
                self._pipelines[pack] = FacePipeline(self._packs(pack))
            return self._pipelines[pack]

    def analyse(self, request: AnalyseRequest) -> Analysis:
        return _run(self.pipeline(request.pack), request)

    def close(self) -> None:
        self._pipelines.clear()


# Each worker process keeps its own LocalAnalyzer (models load once per process).
_worker: LocalAnalyzer | None = None


def _init_worker(warm: Sequence[str] = ()) -> None:
    global _worker
    _worker = LocalAnalyzer()
    for pack in warm:
        try:
            _worker.pipeline(pack).pack.warm_up()
        except Exception as exc:  # a pack that cannot load says so on its first real request
            log.warning("worker %d could not warm up model pack %s: %s", os.getpid(), pack, exc)


def _work(request: AnalyseRequest) -> Analysis:
    assert _worker is not None
    return _worker.analyse(request)


def _started() -> int:
    return os.getpid()


def _worker_packs() -> tuple[int, tuple[str, ...]]:
    """(pid, packs whose pipeline this worker has built): for tests and diagnostics."""
    assert _worker is not None
    return os.getpid(), tuple(sorted(_worker._pipelines))


class ProcessAnalyzer:
    """A pool of worker processes, each with its own copy of the models.

    With ``warm`` packs, every worker is started at once and loads and runs those packs'
    models in its initializer (while the caller goes on, for example loading the index),
    so the first photo does not pay 1-2 s of model loading; ``wait_started`` waits for it.
    """

    def __init__(self, workers: int | None = None, warm: Sequence[str] = ()) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(tuple(warm),),
        )
        # One task per worker: with "spawn" each submit that finds no idle worker starts one.
        self._starting: list[Future[int]] = (
            [self._pool.submit(_started) for _ in range(self.workers)] if warm else []
        )

    def wait_started(self, timeout: float | None = None) -> None:
        """Wait until the workers started by ``warm`` have run their initializer."""
        wait(self._starting, timeout=timeout)

    def analyse(self, request: AnalyseRequest) -> Analysis:
        return self._pool.submit(_work, request).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
