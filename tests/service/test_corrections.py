"""Corrections (negatives, different people, merge, split) and unknown faces, with the fake pack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from facesearch.config import Settings
from facesearch.errors import Conflict, FaceLimitReached, NotFound, ValidationError
from facesearch.service import FaceSearch
from facesearch.storage.tables import DbUnknown, utcnow
from fakes import face_photo, fake_pack, person_photo

ALICE, BOB, CARL = (10, 20), (30, 40), (50, 60)
STRANGER, OTHER = (90, 100), (110, 120)
#: These tests run a third time with Milvus as the index (conftest.py, `database_url`).
MILVUS = True


@pytest.fixture
def svc(tmp_path: Path, database_url: str | None) -> FaceSearch:
    settings = Settings(data_dir=tmp_path, default_pack="fake", database_url=database_url)
    service = FaceSearch(settings, packs={"fake": fake_pack()})
    yield service
    service.close()


@pytest.fixture
def staff(svc: FaceSearch) -> str:
    svc.create_collection("staff")
    alice = [person_photo(*ALICE, b) for b in (0, 3, 6)]
    svc.create_person(
        "staff", external_id="alice", name="Alice", metadata={"desk": 1}, groups=["vip"], images=alice
    )
    svc.create_person("staff", external_id="bob", name="Bob", groups=["staff"], images=[person_photo(*BOB)])
    svc.create_person("staff", external_id="carl", name="Carl", images=[person_photo(*CARL)])
    return "staff"


def _names(result: object) -> list[str]:
    return [m.person.external_id for m in result.matches]  # type: ignore[attr-defined]


# --- negatives ---------------------------------------------------------------------------


def test_a_negative_keeps_a_look_alike_away_whatever_the_threshold(svc: FaceSearch, staff: str) -> None:
    # A look-alike of Alice (same base, far variation b=9) is matched to her at a lax threshold.
    look_alike = person_photo(*ALICE, 9)
    assert _names(svc.identify(staff, look_alike, threshold=0.0))[0] == "alice"
    negative, removed = svc.add_negative(staff, "alice", image=look_alike)
    assert negative.id.startswith("neg_") and negative.person_id.startswith("per_") and removed is None
    for threshold in (None, 0.5, 0.0):
        again = svc.identify(staff, person_photo(*ALICE, 9, side=70), threshold=threshold)  # same look-alike
        assert "alice" not in _names(again)
        assert again.vetoed == 1 or not again.matches or threshold is None
    every = svc.identify(staff, person_photo(*ALICE, 9, side=70), threshold=0.0, top_k=3)
    assert _names(every) == ["bob", "carl"] or set(_names(every)) == {"bob", "carl"}
    assert every.vetoed == 1 and [m.rank for m in every.matches] == [1, 2]
    # Alice herself is still found, and search and identify-all obey the correction too.
    assert _names(svc.identify(staff, person_photo(*ALICE, 1)))[0] == "alice"
    assert "alice" not in _names(svc.search([staff], person_photo(*ALICE, 9), threshold=0.0))
    group = face_photo(((*ALICE, 9), 10, 10, 80), ((*BOB, 0), 200, 10, 80))
    result = svc.identify_all(staff, group, threshold=0.0)
    named = {m.person.external_id for f in result.faces + result.unrecognized for m in f.matches[:1]}
    assert "bob" in named
    look = [f for f in result.faces + result.unrecognized if f.face.box.left == 10][0]
    assert all(m.person.external_id != "alice" for m in look.matches) and look.vetoed == 1


def test_negatives_are_listed_removed_logged_counted_and_deleted_with_the_person(
    svc: FaceSearch, staff: str
) -> None:
    before = svc.store.last_seq()
    negative, _ = svc.add_negative(staff, "alice", image=person_photo(*ALICE, 9))
    assert [c.op for c in svc.store.changes_since(before)] == ["add_negative"]
    assert [n.id for n in svc.list_negatives(staff, "alice")] == [negative.id]
    assert svc.counts()["negatives"] == 1
    assert svc.negative_image(staff, "alice", negative.id)[:2] == b"\xff\xd8"
    svc.delete_negative(staff, "alice", negative.id)
    assert svc.list_negatives(staff, "alice") == []
    assert _names(svc.identify(staff, person_photo(*ALICE, 9), threshold=0.0))[0] == "alice"
    with pytest.raises(NotFound):
        svc.delete_negative(staff, "alice", negative.id)
    svc.add_negative(staff, "alice", image=person_photo(*ALICE, 9))
    svc.delete_person(staff, "alice")
    assert svc.counts()["negatives"] == 0


def test_a_wrongly_enrolled_face_becomes_a_negative(svc: FaceSearch, staff: str) -> None:
    wrong = svc.add_face(staff, "alice", person_photo(*ALICE, 8))  # really the look-alike
    negative, removed = svc.add_negative(staff, "alice", face=wrong.id)
    assert removed == wrong.id and negative.source_face_id == wrong.id
    assert wrong.id not in [f.id for f in svc.get_person(staff, "alice").faces]
    assert "alice" not in _names(svc.identify(staff, person_photo(*ALICE, 8), threshold=0.0))
    # Auto-enrol never adds the look-alike back: it is never Alice's match.
    svc.update_collection(staff, settings={"auto_enroll": True, "auto_enroll_threshold": 0.0})
    result = svc.identify(staff, person_photo(*ALICE, 8, side=70), threshold=0.0)
    assert result.auto_enrolled_face_id is None or "alice" not in _names(result)
    assert len(svc.get_person(staff, "alice").faces) == 3
    # Someone else's face as a negative stays theirs.
    bob_face = svc.get_person(staff, "bob").faces[0].id
    _, removed = svc.add_negative(staff, "carl", face=bob_face)
    assert removed is None and len(svc.get_person(staff, "bob").faces) == 1
    with pytest.raises(ValidationError):
        svc.add_negative(staff, "carl")


# --- different people -------------------------------------------------------------------


def test_different_people_matching_together_are_ambiguous(svc: FaceSearch) -> None:
    svc.create_collection("twins")
    svc.create_person("twins", external_id="ann", images=[person_photo(*ALICE, 0)])
    svc.create_person("twins", external_id="eve", groups=["left"], images=[person_photo(*ALICE, 4)])
    svc.create_person("twins", external_id="bob", images=[person_photo(*BOB)])
    plain = svc.identify("twins", person_photo(*ALICE, 2), top_k=3)
    assert set(_names(plain)) == {"ann", "eve"} and plain.ambiguous == ()
    others = svc.set_different("twins", "ann", "eve")
    assert [p.external_id for p in others] == ["eve"]
    flagged = svc.identify("twins", person_photo(*ALICE, 2), top_k=3)
    assert set(_names(flagged)) == {"ann", "eve"}
    assert [a.person.id for a in flagged.ambiguous] == [m.person.id for m in flagged.matches]
    assert [a.similarity for a in flagged.ambiguous] == [m.similarity for m in flagged.matches]
    # With the default top_k of 1 only one is named, and the other is still reported.
    one = svc.identify("twins", person_photo(*ALICE, 2))
    assert len(one.matches) == 1 and {a.person.external_id for a in one.ambiguous} == {"ann", "eve"}
    assert one.ambiguous[0].person.id == one.matches[0].person.id
    group = face_photo(((*ALICE, 2), 10, 10, 80), ((*BOB, 0), 200, 10, 80))
    faces = {f.face.box.left: f for f in svc.identify_all("twins", group).faces}
    assert len(faces[10].ambiguous) == 2 and faces[200].ambiguous == ()
    # The other one outside the searched groups, past the cut-off, or kept away by a negative: no ambiguity.
    assert svc.identify("twins", person_photo(*ALICE, 2), groups=["default"]).ambiguous == ()
    assert svc.identify("twins", person_photo(*ALICE, 0), threshold=0.9999).ambiguous == ()
    svc.add_negative("twins", "eve", image=person_photo(*ALICE, 2, side=70))
    assert svc.identify("twins", person_photo(*ALICE, 2)).ambiguous == ()
    svc.set_different("twins", "bob", "eve")
    assert svc.identify("twins", person_photo(*BOB)).ambiguous == ()
    assert [p.external_id for p in svc.list_different("twins", "eve")] == ["ann", "bob"]
    svc.unset_different("twins", "eve", "ann")
    assert svc.identify("twins", person_photo(*ALICE, 2), top_k=3).ambiguous == ()
    with pytest.raises(ValidationError):
        svc.set_different("twins", "ann", "ann")
    with pytest.raises(NotFound):
        svc.unset_different("twins", "ann", "eve")


# --- merge and split --------------------------------------------------------------------


def test_merge_moves_everything_and_leaves_a_pointer(svc: FaceSearch, staff: str) -> None:
    dup = svc.create_person(
        staff, external_id="alice2", name="A.", metadata={"desk": 9, "team": "x"}, groups=["night"],
        images=[person_photo(*OTHER)],
    )  # fmt: skip
    svc.add_negative(staff, "alice2", image=person_photo(*CARL))
    svc.set_different(staff, "alice2", "bob")
    alice = svc.get_person(staff, "alice")
    merged = svc.merge_persons(staff, "alice", dup.id, metadata="union")
    assert merged.id == alice.id and merged.name == "Alice" and len(merged.faces) == 4
    assert merged.metadata == {"desk": 1, "team": "x"} and set(merged.groups) == {"vip", "night"}
    with pytest.raises(NotFound) as err:
        svc.get_person(staff, dup.id)
    assert err.value.details["merged_into"] == alice.id
    # The moved face now names Alice, in the index too; the negative and the record moved with it.
    # (Alice's template now averages two different looks: best_face scoring finds the face itself.)
    found = svc.identify(staff, person_photo(*OTHER), groups=["night"], threshold=0.0)
    assert _names(found) == ["alice"]
    svc.update_collection(staff, settings={"person_score": "best_face"})
    found = svc.identify(staff, person_photo(*OTHER), groups=["night"])
    assert _names(found) == ["alice"] and found.matches[0].face_id == dup.faces[0].id
    assert len(svc.list_negatives(staff, "alice")) == 1
    assert [p.external_id for p in svc.list_different(staff, "alice")] == ["bob"]
    with pytest.raises(Conflict):
        svc.merge_persons(staff, "alice", "bob")
    with pytest.raises(ValidationError):
        svc.merge_persons(staff, "alice", "alice")


def test_merge_policies_and_limits(svc: FaceSearch, staff: str) -> None:
    svc.create_person(staff, external_id="c2", metadata={"k": 2}, images=[person_photo(*OTHER)])
    merged = svc.merge_persons(staff, "carl", "c2", metadata="source")
    assert merged.metadata == {"k": 2} and merged.external_id == "carl"
    with pytest.raises(ValidationError):
        svc.merge_persons(staff, "carl", "bob", metadata="mine")
    svc.update_collection(staff, settings={"max_faces_per_person": 3})
    with pytest.raises(FaceLimitReached):
        svc.merge_persons(staff, "alice", "bob")
    assert svc.get_person(staff, "bob").external_id == "bob"  # nothing half done


def test_split_moves_chosen_faces_to_a_new_person(svc: FaceSearch, staff: str) -> None:
    svc.add_face(staff, "bob", person_photo(*OTHER))  # a wrong photo in Bob's faces
    bob = svc.get_person(staff, "bob")
    wrong = [f.id for f in bob.faces[1:]]
    new = svc.split_person(staff, "bob", wrong, external_id="olga", name="Olga", groups=["guests"])
    assert [f.id for f in new.faces] == wrong and new.groups == ("guests",)
    assert [f.id for f in svc.get_person(staff, "bob").faces] == [bob.faces[0].id]
    assert _names(svc.identify(staff, person_photo(*OTHER))) == ["olga"]
    assert _names(svc.identify(staff, person_photo(*BOB))) == ["bob"]
    with pytest.raises(NotFound):
        svc.split_person(staff, "bob", [svc.get_person(staff, "alice").faces[0].id])
    with pytest.raises(ValidationError):
        svc.split_person(staff, "bob", [])
    with pytest.raises(Conflict):
        svc.split_person(staff, "bob", [bob.faces[0].id], external_id="alice")


# --- unknown faces ----------------------------------------------------------------------


def test_unknown_faces_are_not_kept_unless_asked(svc: FaceSearch, staff: str) -> None:
    result = svc.identify(staff, person_photo(*STRANGER))
    assert result.matches == () and result.unknown_id is None
    assert svc.unknown_clusters(staff) == ([], 0)


def test_unknown_faces_are_clustered_and_named(svc: FaceSearch, staff: str) -> None:
    svc.update_collection(staff, settings={"remember_unknown": True})
    ids = [svc.identify(staff, person_photo(*STRANGER, b)).unknown_id for b in (0, 1, 2)]
    assert all(i is not None and i.startswith("unk_") for i in ids)
    group = face_photo(((*STRANGER, 3), 10, 10, 80), ((*OTHER, 0), 200, 10, 80), ((*BOB, 0), 300, 150, 80))
    result = svc.identify_all(staff, group)
    assert [m.person.external_id for f in result.faces for m in f.matches] == ["bob"]
    assert all(f.unknown_id is not None for f in result.unrecognized) and len(result.unrecognized) == 2
    assert svc.identify(staff, person_photo(*BOB)).unknown_id is None  # known faces are not kept
    clusters, held = svc.unknown_clusters(staff)
    assert held == 5 and [c.size for c in clusters] == [4, 1]
    top = clusters[0]
    assert top.id == ids[0] and set(ids) < set(top.members) and top.first_seen <= top.last_seen
    assert svc.unknown_image(staff, top.samples[0])[:2] == b"\xff\xd8"
    assert [c.size for c in svc.unknown_clusters(staff, min_size=2)[0]] == [4]
    assert svc.counts()["unknown_faces"] == 5
    person, added = svc.name_unknowns(staff, cluster=top.members[1], external_id="sam", name="Sam")
    assert added == 4 and person.external_id == "sam" and len(person.faces) == 4
    assert _names(svc.identify(staff, person_photo(*STRANGER, 5))) == ["sam"]
    clusters, held = svc.unknown_clusters(staff)
    assert held == 1 and [c.size for c in clusters] == [1]
    # Into an existing person; a face that is gone is NotFound.
    person, added = svc.name_unknowns(staff, unknowns=list(clusters[0].members), person="carl")
    assert added == 1 and len(person.faces) == 2 and person.external_id == "carl"
    with pytest.raises(NotFound):
        svc.name_unknowns(staff, unknowns=[clusters[0].members[0]], person="carl")
    with pytest.raises(ValidationError):
        svc.name_unknowns(staff, unknowns=["unk_x"], cluster="unk_y")


def test_unknown_faces_are_purged_after_the_retention(svc: FaceSearch, staff: str) -> None:
    svc.update_collection(staff, settings={"remember_unknown": True, "unknown_retention_days": 7})
    old = svc.identify(staff, person_photo(*STRANGER)).unknown_id
    with svc.store._write() as s:
        s.execute(update(DbUnknown).where(DbUnknown.uid == old).values(seen_at=utcnow() - timedelta(days=8)))
    fresh = svc.identify(staff, person_photo(*OTHER)).unknown_id
    clusters, held = svc.unknown_clusters(staff)
    assert held == 1 and clusters[0].members == (fresh,)
    assert svc.forget_unknowns(staff, [fresh]) == 1 and svc.unknown_clusters(staff) == ([], 0)
    with pytest.raises(ValidationError):
        svc.update_collection(staff, settings={"unknown_retention_days": 0})
    with pytest.raises(ValidationError):
        svc.unknown_clusters(staff, limit=10**6)


def test_unknown_faces_are_capped_per_collection(
    svc: FaceSearch, staff: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesearch.storage import _unknowns

    monkeypatch.setattr(_unknowns, "MAX_UNKNOWNS_PER_COLLECTION", 3)
    svc.update_collection(staff, settings={"remember_unknown": True})
    ids = [svc.identify(staff, person_photo(90 + 10 * i, 100)).unknown_id for i in range(5)]
    clusters, held = svc.unknown_clusters(staff)
    assert held == 3 and {m for c in clusters for m in c.members} == set(ids[2:])  # the oldest went first


def test_deleting_the_collection_forgets_everything(svc: FaceSearch, staff: str) -> None:
    svc.update_collection(staff, settings={"remember_unknown": True})
    svc.identify(staff, person_photo(*STRANGER))
    svc.add_negative(staff, "alice", image=person_photo(*ALICE, 9))
    svc.set_different(staff, "alice", "bob")
    svc.delete_collection(staff)
    assert svc.counts()["negatives"] == 0 and svc.counts()["unknown_faces"] == 0
