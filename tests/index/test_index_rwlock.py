"""The index's read/write lock: searches share it, mutations are exclusive, a writer is not starved."""

from __future__ import annotations

import threading
import time

import numpy as np

from facesearch.index import ExactIndex
from facesearch.index._common import RWLock


def test_readers_share_and_writers_exclude() -> None:
    lock = RWLock()
    inside = threading.Barrier(2, timeout=5)

    def reader() -> None:
        with lock.read():
            inside.wait()  # both readers are inside at once, or this times out

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)

    events: list[str] = []

    def write() -> None:
        with lock.write():
            events.append("write")

    with lock.read():
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.05)
        assert events == []  # waits for the reader
        events.append("reader done")
    writer.join(5)
    assert events == ["reader done", "write"]


def test_writer_reenters_and_reads() -> None:
    lock = RWLock()
    with lock.write(), lock.write(), lock.read():
        pass
    with lock.read():  # released completely
        pass
    done = threading.Event()

    def write() -> None:
        with lock.write():
            done.set()

    t = threading.Thread(target=write)
    t.start()
    t.join(5)
    assert done.is_set()


def test_a_waiting_writer_holds_back_new_readers() -> None:
    lock = RWLock()
    order: list[str] = []
    first_in = threading.Event()
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_in.set()
            release.wait(5)
        order.append("r1 out")

    def writer() -> None:
        with lock.write():
            order.append("w")

    def second_reader() -> None:
        with lock.read():
            order.append("r2")

    r1 = threading.Thread(target=first_reader)
    r1.start()
    first_in.wait(5)
    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.05)
    r2 = threading.Thread(target=second_reader)
    r2.start()
    time.sleep(0.05)
    assert order == []
    release.set()
    for t in (r1, w, r2):
        t.join(5)
    assert order.index("w") < order.index("r2")


def test_concurrent_searches_and_writes_stay_consistent() -> None:
    rng = np.random.default_rng(0)
    index = ExactIndex()
    vecs = rng.standard_normal((2000, 16)).astype(np.float32)
    index.add(0, np.arange(2000), np.arange(2000) // 2, vecs)
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                hits = index.search([0], vecs[7], 5)
                assert hits and hits[0].face_id == 7
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=search) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(200):
        index.add(0, [10_000 + i], [9_999], rng.standard_normal((1, 16)).astype(np.float32) + 50)
        index.remove_faces(0, [10_000 + i])
    stop.set()
    for t in readers:
        t.join(10)
    assert not errors
    assert index.count(0) == 2000
