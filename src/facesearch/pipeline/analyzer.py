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
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Protocol

from facesearch.config import PackConfig
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.packs import build_pack
from facesearch.pipeline.runner import AnalyseOptions, Analysis, FacePipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyseRequest:
    """One photo to analyse with which pack, within which limits, and how (``options``)."""

    pack: str
    data: bytes
    max_bytes: int
    max_pixels: int
    options: AnalyseOptions = field(default_factory=AnalyseOptions)


class Analyzer(Protocol):
    """Runs the pipeline for a request and returns its Analysis (raising FaceSearchError)."""

    def analyse(self, request: AnalyseRequest) -> Analysis: ...

    def close(self) -> None: ...


class LocalAnalyzer:
    """Runs the pipeline in the calling thread (CLI, tests, single-user use).

    ``packs`` builds a pack by name (default: ``build_pack`` with the environment's settings).
    """

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
        r = request
        return self.pipeline(r.pack).analyse_bytes(
            r.data, r.options, max_bytes=r.max_bytes, max_pixels=r.max_pixels
        )

    def packs_built(self) -> tuple[str, ...]:
        """The packs whose pipeline has been built, sorted."""
        with self._lock:
            return tuple(sorted(self._pipelines))

    def close(self) -> None:
        self._pipelines.clear()


# Each worker process keeps its own LocalAnalyzer (models load once per process); set only by the
# pool's initializer, in the worker.
_worker: LocalAnalyzer | None = None


def _init_worker(warm: Sequence[str] = (), config: PackConfig | None = None) -> None:
    global _worker
    pack_config = config or PackConfig.from_environment()
    _worker = LocalAnalyzer(lambda name: build_pack(name, pack_config))
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
    return os.getpid(), _worker.packs_built()


class ProcessAnalyzer:
    """A pool of worker processes, each with its own copy of the models.

    Each worker builds packs with ``config`` (default: the environment's settings). With
    ``warm`` packs, every worker is started at once and loads and runs those packs'
    models in its initializer (while the caller goes on, for example loading the index),
    so the first photo does not pay 1-2 s of model loading; ``wait_started`` waits for it.
    """

    def __init__(
        self, workers: int | None = None, warm: Sequence[str] = (), config: PackConfig | None = None
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(tuple(warm), config),
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
