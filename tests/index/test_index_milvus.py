"""Milvus shared by several processes (two MilvusIndex clients on the same collections): what
one writes, the other finds and rewrites correctly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from facesearch.index import open_index
from facesearch.index.milvus import MilvusIndex
from milvusutil import emptied_after

pytestmark = pytest.mark.milvus


@pytest.fixture
def pair(milvus_session_url: str) -> Iterator[tuple[MilvusIndex, MilvusIndex]]:
    with emptied_after(milvus_session_url) as url:
        a, b = open_index(url, None), open_index(url, None)
        assert isinstance(a, MilvusIndex) and isinstance(b, MilvusIndex)
        try:
            yield a, b
        finally:
            a.close()
            b.close()


def _persons(index: MilvusIndex, q: np.ndarray, groups: list[str]) -> set[int]:
    return {h.person_id for h in index.search([3], q, 10, groups=groups)}


def test_a_group_change_by_the_other_process_is_not_undone_by_a_stale_cache(
    pair: tuple[MilvusIndex, MilvusIndex],
) -> None:
    a, b = pair
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    a.add(3, [1, 2, 3, 4], [1, 1, 2, 2], x)
    a.set_person_groups(3, 1, ["a"])
    b.barrier()
    b.refresh()  # the follower does this under the index lock before it applies
    b.set_person_groups(3, 1, ["b"])
    b.barrier()
    a.refresh()
    a.set_person_groups(3, 1, ["a"])  # back to "a": must be rewritten though "a" was set here before
    a.barrier()
    assert _persons(a, x[0], ["a"]) == {1}
    assert _persons(a, x[0], ["b"]) == set()


def test_the_other_process_finds_a_new_partition_and_its_faces(pair: tuple[MilvusIndex, MilvusIndex]) -> None:
    a, b = pair
    assert b.search([3], np.zeros(8, np.float32), 5) == []  # b knows no partition 3 yet
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    a.add(3, [1, 2, 3], [7, 7, 8], x)
    a.barrier()  # a's write is visible (the writer waits before it acknowledges)
    deadline = time.monotonic() + 5
    while not (hits := b.search([3], x[2], 1)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hits and hits[0].person_id == 8  # b refreshed its partitions on the unknown one
    a.remove_person(3, 8)
    a.barrier()
    b.barrier()
    assert all(h.person_id != 8 for h in b.search([3], x[2], 5))
