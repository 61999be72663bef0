"""The worker pool heals itself: a dead worker costs a retry, not the service (#15 point 1), and
workers end when the process that started them dies (point 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from poolwork import cores_seen, echo_pid

from facesearch.errors import ImageUnprocessable, WorkersUnavailable
from facesearch.pipeline.analyzer import AnalyseRequest, ProcessAnalyzer

pytestmark = pytest.mark.integration


def req(data: bytes) -> AnalyseRequest:
    return AnalyseRequest(pack="dlib", data=data, max_bytes=10**6, max_pixels=10**7)


@pytest.fixture
def pool() -> Iterator[ProcessAnalyzer]:
    analyzer = ProcessAnalyzer(1, work=echo_pid)  # type: ignore[arg-type]
    yield analyzer
    analyzer.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def test_a_killed_worker_is_replaced_and_the_next_request_works(pool: ProcessAnalyzer) -> None:
    first: Any = pool.analyse(req(b"a"))
    assert pool.state() == {"state": "ok", "workers": 1, "restarts": 0}
    os.kill(first, signal.SIGKILL)
    time.sleep(0.5)
    second: Any = pool.analyse(req(b"b"))  # the broken pool is noticed, replaced, the request retried
    assert second != first and alive(second)
    assert pool.restarts == 1 and pool.state()["state"] == "ok"
    assert pool.analyse(req(b"c")) == second


def test_a_request_in_flight_when_its_worker_dies_is_retried(pool: ProcessAnalyzer) -> None:
    pid: Any = pool.analyse(req(b"warm"))
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(pool.analyse(req(b"slow"))))
    thread.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    thread.join(20)
    assert out and out[0] != pid and pool.restarts == 1


def test_the_same_photo_twice_in_flight_when_a_worker_dies_is_not_poison() -> None:
    """Found by bench/soak.py: 8 clients, one worker killed; two requests for the same group photo
    were in flight, each counted a crash for the one breakage, and that photo was refused
    (IMAGE_UNPROCESSABLE) for the rest of the run. One breakage is one crash per photo."""
    analyzer = ProcessAnalyzer(2, work=echo_pid)  # type: ignore[arg-type]
    try:
        pids = {analyzer.analyse(req(b"warm")) for _ in range(4)}
        out: list[Any] = []
        errors: list[Exception] = []

        def slow() -> None:
            try:
                out.append(analyzer.analyse(req(b"slow")))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=slow) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(sorted(pids)[0], signal.SIGKILL)  # type: ignore[arg-type]
        for t in threads:
            t.join(30)
        assert not errors and len(out) == 3, errors
        assert isinstance(analyzer.analyse(req(b"slow")), int)  # not refused afterwards either
    finally:
        analyzer.close()


def test_a_poison_photo_is_refused_and_the_pool_keeps_working(pool: ProcessAnalyzer) -> None:
    assert isinstance(pool.analyse(req(b"warm")), int)
    with pytest.raises(ImageUnprocessable) as info:
        pool.analyse(req(b"poison"))  # crashes a worker, is retried once, crashes the next one
    assert info.value.code == "IMAGE_UNPROCESSABLE" and info.value.details["crashes"] == 2
    assert pool.restarts == 2
    assert isinstance(pool.analyse(req(b"fine")), int)  # other photos still work
    with pytest.raises(ImageUnprocessable):
        pool.analyse(req(b"poison"))  # refused at once now: no third crash
    assert pool.restarts == 2


def test_a_pool_that_never_answered_blames_no_photo(pool: ProcessAnalyzer) -> None:
    # Nothing has worked yet (a broken install, a pack that crashes on load): not the photo's fault.
    with pytest.raises(WorkersUnavailable):
        pool.analyse(req(b"poison"))
    assert isinstance(pool.analyse(req(b"fine")), int)


CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from facesearch.pipeline.analyzer import AnalyseRequest, ProcessAnalyzer
from poolwork import cores_seen, echo_pid
pool = ProcessAnalyzer(1, work=echo_pid)
print(pool.analyse(AnalyseRequest("dlib", b"x", 10**6, 10**7)), flush=True)
time.sleep(60)
"""


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    code = CHILD.format(tests=str(Path(__file__).parent))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        worker = int(child.stdout.readline())
        assert alive(worker)
        child.kill()  # kill -9 of the process that owns the pool
        child.wait(10)
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker), "the worker outlived its parent"
    finally:
        if child.poll() is None:
            child.kill()


def test_a_photo_alone_in_flight_gets_both_cores_and_one_beside_another_gets_one() -> None:
    analyzer = ProcessAnalyzer(2, work=cores_seen, idle_cores=2)  # type: ignore[arg-type]
    try:
        assert analyzer.analyse(req(b"a")) == 2  # nothing else in flight
        seen: list[int] = []
        slow = threading.Thread(target=lambda: seen.append(analyzer.analyse(req(b"slow"))))
        slow.start()
        time.sleep(0.3)  # the slow one is in flight (alone when it started: 2 cores)
        assert analyzer.analyse(req(b"b")) == 1
        slow.join()
        assert seen == [2]
        assert analyzer.analyse(req(b"c")) == 2  # alone again
    finally:
        analyzer.close()
    single = ProcessAnalyzer(1, work=cores_seen, idle_cores=1)  # type: ignore[arg-type]
    try:
        assert single.analyse(req(b"a")) == 1
    finally:
        single.close()
