"""collection_info: a collection without counting its persons and faces (for the search path)."""

from __future__ import annotations

import pytest

from facesearch.domain import Collection
from facesearch.errors import NotFound
from facesearch.storage import Store


def test_collection_info_matches_get_collection_but_for_counts(store: Store, coll: Collection) -> None:
    store.create_person(coll.id, "alice", "Alice", None, ())
    full = store.get_collection(coll.name)
    for ref in (coll.id, coll.name, store.collection_pk(coll.id)):
        info = store.collection_info(ref)
        assert (info.person_count, info.face_count) == (None, None)
        assert (info.id, info.name, info.pack, info.settings, info.kind) == (
            full.id,
            full.name,
            full.pack,
            full.settings,
            full.kind,
        )
    assert full.person_count == 1


def test_collection_info_of_a_missing_collection(store: Store) -> None:
    with pytest.raises(NotFound):
        store.collection_info("nope")
