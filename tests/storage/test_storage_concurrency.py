"""Several writers on one SQLite file (threads, and two engines as two processes would)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.storage import Store, open_store


def test_concurrent_writers_lose_nothing(store: Store, coll: Collection, database_url: str) -> None:
    second = open_store(database_url)  # its own engine and pool, like another process
    start = store.last_seq()

    def enrol(i: int) -> str:
        s = store if i % 2 else second
        p = s.create_person(coll.id, f"e{i}", groups=[f"g{i % 3}"])
        s.add_face(coll.id, p.id, "dlib", vec(i), BOX)
        s.update_person(coll.id, p.id, name=f"n{i}")
        return p.id

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            made = list(pool.map(enrol, range(40)))
    finally:
        second.close()
    assert len(set(made)) == 40
    assert store.get_collection(coll.id).face_count == 40
    changes = store.changes_since(start)
    assert [c.seq for c in changes] == list(range(start + 1, start + 81))
    assert sum(c.op == "add_face" and c.embedding is not None for c in changes) == 40
