"""Where photos are turned into faces: in this process, or in a pool of worker processes.

dlib computes on one core and holds the GIL, so the HTTP server sends detection and
embedding to worker processes (one model copy each) to keep both cores busy while
index search and SQL stay responsive in the main process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from typing import Any, Protocol

from facesearch.config import PackConfig
from facesearch.errors import ImageUnprocessable, WorkersUnavailable
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.cores import using
from facesearch.pipeline.packs import build_pack
from facesearch.pipeline.runner import AnalyseOptions, Analysis, FacePipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyseRequest:
    """One photo to analyse with which pack, within which limits, and how (``options``); ``cores``:
    how many cores its analysis may use (``facesearch.pipeline.cores``)."""

    pack: str
    data: bytes
    max_bytes: int
    max_pixels: int
    options: AnalyseOptions = field(default_factory=AnalyseOptions)
    cores: int = 1


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
        with using(r.cores):
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


PARENT_CHECK_S = 1.0  # how often a worker looks whether the process that started it still runs


def _exit_with_parent(parent: int) -> None:
    """In a worker: end this process soon after its parent is gone (kill -9, OOM kill, crash), so
    no orphaned worker keeps its models in memory. Polling works on every platform."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(
    warm: Sequence[str] = (), config: PackConfig | None = None, parent: int | None = None
) -> None:
    global _worker
    # Ctrl-C reaches the whole process group: the parent decides what stops (the CLI finishes
    # the photos in flight and prints its summary); a worker never dies with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _exit_with_parent(parent)
    pack_config = config or PackConfig.from_environment()
    _worker = LocalAnalyzer(lambda name: build_pack(name, pack_config))
    for pack in warm:
        try:
            pipeline = _worker.pipeline(pack)
            pipeline.warm_up()
            if (os.cpu_count() or 1) > 1:  # the two-thread sessions of a photo alone in flight
                with using(2):
                    pipeline.pack.warm_up()
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


#: A photo is refused once it has broken the pool this many times (a "poison" photo).
POISON_CRASHES = 2
_CRASH_MEMORY = 1000  # photos whose crashes are remembered (the most recent)


class ProcessAnalyzer:
    """A pool of worker processes, each with its own copy of the models, that heals itself.

    Each worker builds packs with ``config`` (default: the environment's settings). With
    ``warm`` packs, every worker is started at once and loads and runs those packs'
    models in its initializer (while the caller goes on, for example loading the index),
    so the first photo does not pay 1-2 s of model loading; ``wait_started`` waits for it.

    When a worker dies (kill -9, OOM, a native crash) the pool is replaced and the request is
    tried once more; if it breaks the new pool too it fails with ``WORKERS_UNAVAILABLE`` (503), and
    a photo that has broken the pool ``POISON_CRASHES`` times is refused at once with
    ``IMAGE_UNPROCESSABLE``. Workers end themselves when this process dies. ``work`` is the
    function a worker runs per request (a seam for tests; it must be importable by the workers).

    A photo that arrives while no other is in flight is analysed with ``idle_cores`` cores (default:
    two on a machine with two or more): one client's request then uses both cores instead of one,
    and as soon as a second request is in flight each photo gets one core again.
    """

    def __init__(
        self,
        workers: int | None = None,
        warm: Sequence[str] = (),
        config: PackConfig | None = None,
        *,
        work: Callable[[AnalyseRequest], Analysis] | None = None,
        idle_cores: int | None = None,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.idle_cores = idle_cores if idle_cores is not None else min(2, os.cpu_count() or 1)
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self._warm = tuple(warm)
        self._config = config
        self._work = work or _work
        self._lock = threading.Lock()
        # Photo hash -> the pools (by generation) that broke while it was in flight: a photo is
        # poison after breaking POISON_CRASHES different pools. Counting requests instead made
        # one breakage with the same photo twice in flight look like two (found by bench/soak.py).
        self._crashes: OrderedDict[str, set[int]] = OrderedDict()
        self._generation = 0  # of the current pool
        self._answered = 0  # requests the pool has answered: a pool that never works blames no photo
        self.restarts = 0
        self._closed = False
        self._pool, self._starting = self._start()

    def _start(self) -> tuple[ProcessPoolExecutor, list[Future[int]]]:
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._warm, self._config, os.getpid()),
        )
        # One task per worker: with "spawn" each submit that finds no idle worker starts one.
        starting = [pool.submit(_started) for _ in range(self.workers)] if self._warm else []
        return pool, starting

    def wait_started(self, timeout: float | None = None) -> None:
        """Wait until the workers started by ``warm`` have run their initializer."""
        wait(self._starting, timeout=timeout)

    def state(self) -> dict[str, Any]:
        """For the health route: "ok", or "restarting" while a broken pool is being replaced."""
        busy = self._lock.locked()
        return {"state": "restarting" if busy else "ok", "workers": self.workers, "restarts": self.restarts}

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken or self._closed:
                return  # another request replaced it already
            log.warning("a worker process died: starting a new pool of %d", self.workers)
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool, self._starting = self._start()
            self._generation += 1
            self.restarts += 1

    def _crashed(self, key: str, generation: int) -> int:
        """Record that the pool of ``generation`` broke with this photo in flight; how many
        different pools it has broken."""
        with self._lock:
            pools = self._crashes.pop(key, set())
            pools.add(generation)
            self._crashes[key] = pools
            while len(self._crashes) > _CRASH_MEMORY:
                self._crashes.popitem(last=False)
            return len(pools)

    def analyse(self, request: AnalyseRequest) -> Analysis:
        with self._flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            if alone and self.idle_cores > request.cores:
                request = replace(request, cores=self.idle_cores)
            return self._analyse(request)
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    def _analyse(self, request: AnalyseRequest) -> Analysis:
        def key() -> str:  # hashed only once some photo has crashed a worker: not on the hot path
            return hashlib.sha256(request.data).hexdigest()

        if self._crashes and len(self._crashes.get(key(), ())) >= POISON_CRASHES:
            raise ImageUnprocessable(
                "this photo made the analysis crash before: it is refused",
                details={"crashes": POISON_CRASHES},
            )
        attempt = refused = 0
        while True:
            pool, generation = self._pool, self._generation
            try:
                future = pool.submit(self._work, request)
            except (BrokenProcessPool, RuntimeError):
                # Broken before this request (a worker died between requests), or replaced and shut
                # down meanwhile: not this photo's doing; take a new pool, a bounded number of times.
                refused += 1
                if self._closed or refused > 3:
                    raise WorkersUnavailable("the worker processes could not be restarted") from None
                self._replace(pool)
                continue
            try:
                result = future.result()
                self._answered += 1
                return result
            except BrokenProcessPool:
                attempt += 1
                # A pool that has never answered blames no photo (a broken install, say).
                crashes = self._crashed(key(), generation) if self._answered > 0 else 0
                self._replace(pool)
                if crashes >= POISON_CRASHES:
                    raise ImageUnprocessable(
                        "this photo made the analysis crash twice: it is refused",
                        details={"crashes": crashes},
                    ) from None
                if attempt >= 2:
                    raise WorkersUnavailable(
                        "the worker processes stopped during this request; they were restarted, try again"
                    ) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
