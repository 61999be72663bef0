"""`Store.enroll_faces`: a folder's analysed faces written in one transaction, with every rule of
`create_person` and `add_face` checked per face (on SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest
from storage_helpers import BOX, vec

from facesearch.domain import Collection, Face
from facesearch.errors import Conflict, FaceLimitReached, ValidationError
from facesearch.storage import NewFace, PersonFace, Store
from facesearch.storage.records import OP_ADD_FACE, OP_SET_GROUPS


def face(seed: int, digest: str | None = None, *, pack: str = "dlib", dim: int = 128) -> NewFace:
    return NewFace(pack, vec(seed, dim), BOX, {"sharpness": float(seed)}, b"\xff\xd8" + bytes([seed]), digest)


def item(external_id: str, seed: int, digest: str | None = None, **kw: object) -> PersonFace:
    return PersonFace(external_id, external_id.replace("_", " "), face(seed, digest, **kw))  # type: ignore[arg-type]


def test_persons_are_created_at_their_first_face_and_faces_added_in_order(
    store: Store, coll: Collection
) -> None:
    old = store.create_person(coll.id, "ann", "Ann")
    store.add_face(coll.id, old.id, "dlib", vec(1), BOX, {}, None, "1" * 64)
    version = store.data_version(fresh=True)
    done = store.enroll_faces(
        coll.id,
        [item("bob_smith", 2, "2" * 64), item("ann", 3, "3" * 64), item("bob_smith", 4, "4" * 64)],
    )
    assert all(isinstance(d, Face) for d in done)
    assert store.data_version(fresh=True) == version + 1  # one write transaction
    bob = store.get_person(coll.id, "bob_smith")
    assert bob.name == "bob smith" and bob.groups == ("default",)
    assert [f.id for f in bob.faces] == [done[0].id, done[2].id]  # type: ignore[union-attr]
    assert all(f.person_id == bob.id and f.collection_id == coll.id for f in bob.faces)
    assert store.get_face(done[0].id) == done[0]  # type: ignore[union-attr]
    assert np.array_equal(store.person_embeddings(bob.id), np.stack([vec(2), vec(4)]))
    assert len(store.get_person(coll.id, "ann").faces) == 2
    assert store.get_face_thumbnail(done[1].id) == b"\xff\xd8\x03"  # type: ignore[union-attr]
    # The change log: the new person's groups before any of its faces, one add_face per face.
    log = [c for c in store.changes_since(0) if c.op in (OP_SET_GROUPS, OP_ADD_FACE)][-4:]
    bob_pk, ann_pk = store.person_pk(coll.id, bob.id), store.person_pk(coll.id, old.id)
    assert [(c.op, c.person_id) for c in log] == [
        (OP_SET_GROUPS, bob_pk),
        (OP_ADD_FACE, bob_pk),
        (OP_ADD_FACE, ann_pk),
        (OP_ADD_FACE, bob_pk),
    ]
    assert log[0].payload == {"groups": ["default"]}
    assert log[1].embedding is not None and np.array_equal(log[1].embedding, vec(2))
    assert log[1].payload == {"pack": "dlib", "dim": 128}


def test_refusals_stay_in_their_place_and_the_rest_commits(store: Store, coll: Collection) -> None:
    old = store.create_person(coll.id, "ann")
    store.add_face(coll.id, old.id, "dlib", vec(1), BOX, {}, None, "a" * 64)
    done = store.enroll_faces(
        coll.id,
        [
            item("ann", 1, "a" * 64),  # ann already has this very photo
            item("cy", 2, "c" * 64),
            item("cy", 3, "c" * 64),  # the same photo twice in one folder
            item("cy", 4, "d" * 64),
            item("cy", 5, "e" * 64),  # over the limit of 2
            item("dee", 6, pack="onnx"),  # not the collection's pack
            item("dee", 7, dim=64),  # not the collection's dimension
            item("", 8),  # no external id
        ],
        max_faces=2,
    )
    assert done[0] is None and done[2] is None
    assert isinstance(done[1], Face) and isinstance(done[3], Face)
    assert isinstance(done[4], FaceLimitReached)
    assert isinstance(done[5], ValidationError) and done[5].details["field"] == "pack"
    assert isinstance(done[6], ValidationError) and done[6].details["field"] == "embedding"
    assert isinstance(done[7], ValidationError)
    assert len(store.get_person(coll.id, "cy").faces) == 2
    assert len(store.get_person(coll.id, "ann").faces) == 1
    # A person whose every face was refused is not created.
    persons, _ = store.list_persons(coll.id, external_id="dee")
    assert persons == []
    assert store.photo_hashes(coll.id, "cy") == {"c" * 64, "d" * 64}
    assert store.photo_hashes(coll.id, "dee") is None


def test_a_failed_batch_writes_nothing(
    store: Store, coll: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.enroll_faces(coll.id, [item("ann", 1)])[0]
    assert isinstance(first, Face)
    import facesearch.storage._faces as faces_module

    # Every new face gets the uid of the face stored above: the insert breaks the unique key.
    monkeypatch.setattr(
        faces_module, "new_uid", lambda prefix: first.id if prefix == "fac_" else f"{prefix}x"
    )
    version = store.data_version(fresh=True)
    with pytest.raises(Conflict):
        store.enroll_faces(coll.id, [item("bob", 2), item("ann", 3)])
    assert store.list_persons(coll.id, external_id="bob")[0] == []
    assert len(store.get_person(coll.id, "ann").faces) == 1
    assert store.data_version(fresh=True) == version


def test_an_empty_or_fully_refused_batch_is_harmless(store: Store, coll: Collection) -> None:
    assert store.enroll_faces(coll.id, []) == []
    done = store.enroll_faces(coll.id, [item("x", 1, pack="onnx")])
    assert isinstance(done[0], ValidationError)
    assert store.face_count(coll.id) == 0
