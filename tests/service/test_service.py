"""FaceSearch rules with the deterministic fake pack (no models)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from facesearch.config import Settings
from facesearch.errors import Conflict, FaceQualityTooLow, NoFaceDetected, NotFound, ValidationError
from facesearch.service import FaceSearch
from fakes import face_photo, fake_pack, person_photo
from milvusutil import drop_prefix

ALICE, BOB, CARL, DORA = (10, 20), (30, 40), (50, 60), (70, 80)
#: These tests run a third time with Milvus as the index (conftest.py, `database_url`).
MILVUS = True


def open_service(data_dir: Path, database_url: str | None = None) -> FaceSearch:
    settings = Settings(data_dir=data_dir, default_pack="fake", database_url=database_url)
    return FaceSearch(settings, packs={"fake": fake_pack()})


@pytest.fixture
def svc(tmp_path: Path, database_url: str | None) -> FaceSearch:
    """Every service test runs on SQLite and on PostgreSQL."""
    service = open_service(tmp_path, database_url)
    yield service
    service.close()


@pytest.fixture
def staff(svc: FaceSearch) -> str:
    svc.create_collection("staff")
    photos = [person_photo(*ALICE, 0), person_photo(*ALICE, 3), person_photo(*ALICE, 6)]
    svc.create_person(
        "staff", external_id="alice", name="Alice", metadata={"desk": 1}, groups=["vip"], images=photos
    )
    svc.create_person("staff", external_id="bob", name="Bob", groups=["staff"], images=[person_photo(*BOB)])
    svc.create_person("staff", external_id="carl", name="Carl", images=[person_photo(*CARL)])
    return "staff"


def test_identify_finds_the_person(svc: FaceSearch, staff: str) -> None:
    result = svc.identify(staff, person_photo(*ALICE, 1))
    assert [m.person.external_id for m in result.matches] == ["alice"]
    best = result.matches[0]
    assert best.similarity > 0.9 and best.collection == "staff" and best.person.metadata == {"desk": 1}
    assert result.searched == 5 and result.query_time_ms > 0
    assert set(result.timings) >= {"decode_ms", "detect_ms", "embed_ms", "search_ms"}


def test_deduplicate_fills_top_k_persons(svc: FaceSearch, staff: str) -> None:
    deduped = svc.identify(staff, person_photo(*ALICE, 1), top_k=3, threshold=0.0)
    assert [m.person.external_id for m in deduped.matches] == ["alice", "bob", "carl"] or [
        m.person.external_id for m in deduped.matches
    ][0] == "alice"
    assert len({m.person.id for m in deduped.matches}) == 3
    raw = svc.identify(staff, person_photo(*ALICE, 1), top_k=3, threshold=0.0, deduplicate=False)
    assert [m.person.external_id for m in raw.matches] == ["alice", "alice", "alice"]
    assert [m.rank for m in raw.matches] == [1, 2, 3]


def test_threshold_and_strangers(svc: FaceSearch, staff: str) -> None:
    assert svc.identify(staff, person_photo(*DORA)).matches == ()
    assert len(svc.identify(staff, person_photo(*DORA), threshold=0.0).matches) == 1
    assert svc.identify(staff, person_photo(*ALICE, 9), threshold=1.0).matches == ()


def test_return_metadata_false(svc: FaceSearch, staff: str) -> None:
    m = svc.identify(staff, person_photo(*ALICE), return_metadata=False).matches[0]
    assert m.person.metadata == {}
    t = svc.identify(staff, person_photo(*ALICE), return_thumbnails=True).matches[0]
    assert t.thumbnail is not None and t.thumbnail[:2] == b"\xff\xd8"


def test_groups_filter(svc: FaceSearch, staff: str) -> None:
    probe = person_photo(*BOB)
    assert [m.person.external_id for m in svc.identify(staff, probe, groups=["staff"]).matches] == ["bob"]
    assert svc.identify(staff, probe, groups=["vip"]).matches == ()
    defaults = svc.identify(staff, person_photo(*CARL), groups=["default"])
    assert [m.person.external_id for m in defaults.matches] == ["carl"]
    carl = defaults.matches[0].person
    svc.add_member(staff, "vip", carl.id)
    assert svc.identify(staff, person_photo(*CARL), groups=["default"]).matches == ()
    assert len(svc.identify(staff, person_photo(*CARL), groups=["vip"]).matches) == 1


def test_auto_enroll_adds_reference_but_never_a_near_duplicate(svc: FaceSearch) -> None:
    svc.create_collection(
        "door", settings={"auto_enroll": True, "auto_enroll_threshold": 0.8, "max_faces_per_person": 3}
    )
    p = svc.create_person("door", external_id="x", images=[person_photo(*ALICE, 0)])
    first = svc.identify("door", person_photo(*ALICE, 5))
    assert first.auto_enrolled_face_id is not None
    again = svc.identify("door", person_photo(*ALICE, 5))
    assert again.auto_enrolled_face_id is None  # a near-duplicate of the face just kept
    third = svc.identify("door", person_photo(*ALICE, 8))
    assert third.auto_enrolled_face_id is not None
    assert len(svc.get_person("door", p.id).faces) == 3
    full = svc.identify("door", person_photo(*ALICE, 2))
    assert full.auto_enrolled_face_id is None  # max_faces_per_person reached
    off = svc.identify("door", person_photo(*ALICE, 7), auto_enroll=False)
    assert off.auto_enrolled_face_id is None


def test_enroll_if_unknown_creates_the_person(svc: FaceSearch, staff: str) -> None:
    r = svc.identify(staff, person_photo(*DORA), enroll_if_unknown=True, external_id="dora", name="Dora")
    assert r.matches == () and r.created_person_id is not None
    again = svc.identify(staff, person_photo(*DORA, 2), enroll_if_unknown=True, external_id="dora2")
    assert again.created_person_id is None
    assert again.matches[0].person.external_id == "dora"


def test_search_over_several_collections(svc: FaceSearch, staff: str) -> None:
    svc.create_collection("guests")
    svc.create_person("guests", external_id="dora", images=[person_photo(*DORA)])
    svc.create_person("guests", external_id="alice-guest", images=[person_photo(*ALICE, 2)])
    r = svc.search(["staff", "guests"], person_photo(*ALICE, 2), top_k=5)
    assert {(m.collection, m.person.external_id) for m in r.matches} == {
        ("staff", "alice"),
        ("guests", "alice-guest"),
    }
    assert r.matches[0].collection == "guests"  # the exact shade is closest
    assert r.searched == 7


def test_deleted_person_is_gone_everywhere(svc: FaceSearch, staff: str) -> None:
    alice = svc.identify(staff, person_photo(*ALICE)).matches[0].person
    face_ids = [f.id for f in svc.get_person(staff, alice.id).faces]
    svc.delete_person(staff, alice.id)
    assert (
        svc.identify(staff, person_photo(*ALICE), threshold=0.0, top_k=5).matches[0].person.external_id
        != "alice"
    )
    for fid in face_ids:
        with pytest.raises(NotFound):
            svc.face_image(fid)
    assert svc.index.count() == 2
    with pytest.raises(NotFound):
        svc.get_person(staff, alice.id)


def test_add_and_delete_face(svc: FaceSearch, staff: str) -> None:
    bob = svc.list_persons(staff, external_id="bob")[0][0]
    face = svc.add_face(staff, bob.id, person_photo(*BOB, 4))
    assert svc.index.count() == 6
    with pytest.raises(Conflict):
        svc.add_face(staff, bob.id, person_photo(*BOB, 4))
    svc.delete_face(staff, face.id)
    assert svc.index.count() == 5
    assert face.id not in {f.id for f in svc.get_person(staff, bob.id).faces}


def test_bad_input_at_the_boundary(svc: FaceSearch, staff: str) -> None:
    with pytest.raises(NotFound):
        svc.identify("nope", person_photo(*ALICE))
    with pytest.raises(Conflict):
        svc.create_person(staff, external_id="alice")
    with pytest.raises(NoFaceDetected):
        svc.identify(staff, face_photo())
    for top_k in (0, 101):
        with pytest.raises(ValidationError) as info:
            svc.identify(staff, person_photo(*ALICE), top_k=top_k)
        assert info.value.details["field"] == "top_k"
    for threshold in (-0.1, 1.5):
        with pytest.raises(ValidationError) as info:
            svc.identify(staff, person_photo(*ALICE), threshold=threshold)
        assert info.value.details["field"] == "threshold"
    with pytest.raises(ValidationError):
        svc.create_collection("bad name!")
    with pytest.raises(ValidationError):
        svc.create_collection("x", settings={"auto_enroll_threshold": 2})


def test_quality_gate_refuses_and_writes_nothing(svc: FaceSearch, staff: str) -> None:
    tiny = face_photo(((1, 2, 0), 150, 100, 20))
    with pytest.raises(FaceQualityTooLow) as info:
        svc.create_person(staff, external_id="tiny", images=[person_photo(*DORA), tiny])
    assert info.value.reason == "FACE_TOO_SMALL" and info.value.details["image"] == 1
    assert svc.list_persons(staff, external_id="tiny")[0] == []
    edge = face_photo(((1, 2, 0), 0, 100, 100))
    with pytest.raises(FaceQualityTooLow) as info:
        svc.create_person(staff, external_id="edge", images=[edge])
    assert info.value.reason == "FACE_CLOSE_TO_BORDER"


def test_face_choice_central_and_largest(svc: FaceSearch, staff: str) -> None:
    photo = face_photo(((*BOB, 0), 0, 0, 140), ((*ALICE, 0), 170, 120, 60), size=(400, 300))
    assert svc.identify(staff, photo).matches[0].person.external_id == "alice"
    assert svc.identify(staff, photo, face="largest").matches[0].person.external_id == "bob"


def test_crop_mode(svc: FaceSearch, staff: str) -> None:
    crop = face_photo(((*CARL, 0), 0, 0, 120), size=(120, 120))
    assert svc.identify(staff, crop, crop=True).matches[0].person.external_id == "carl"


def test_identify_all(svc: FaceSearch, staff: str) -> None:
    photo = face_photo(((*ALICE, 0), 10, 10, 80), ((*BOB, 0), 150, 10, 80), ((*DORA, 0), 280, 150, 80))
    r = svc.identify_all(staff, photo, output_size=64)
    assert sorted(f.matches[0].person.external_id for f in r.faces) == ["alice", "bob"]
    assert len(r.unrecognized) == 1 and r.unrecognized[0].matches == ()
    assert all(f.crop[:2] == b"\xff\xd8" for f in (*r.faces, *r.unrecognized))


def test_verify(svc: FaceSearch, staff: str) -> None:
    same = svc.verify(person_photo(*ALICE, 0), person_photo(*ALICE, 4))
    assert same.match and same.similarity > 0.9
    diff = svc.verify(person_photo(*ALICE), person_photo(*BOB))
    assert not diff.match
    alice = svc.list_persons(staff, external_id="alice")[0][0]
    assert svc.verify(person_photo(*ALICE, 7), collection=staff, person=alice.id).match
    with pytest.raises(ValidationError):
        svc.verify(person_photo(*ALICE))


def test_detect(svc: FaceSearch) -> None:
    found = svc.detect(face_photo(((*ALICE, 0), 10, 10, 80), ((*BOB, 0), 150, 10, 80)))
    assert len(found.faces) == 2 and found.smallest_face_size == 32  # the default min_face_size
    nothing = svc.detect(face_photo())
    assert nothing.faces == () and nothing.smallest_face_size == 32


def test_restart_keeps_everything_and_index_rebuilds_from_sql(
    tmp_path: Path, database_url: str | None
) -> None:
    svc = open_service(tmp_path, database_url)
    svc.create_collection("c")
    svc.create_person("c", external_id="a", images=[person_photo(*ALICE)])
    svc.close()
    again = open_service(tmp_path, database_url)
    assert again.identify("c", person_photo(*ALICE)).matches[0].person.external_id == "a"
    again.create_person("c", external_id="b", images=[person_photo(*BOB)])
    again.close()
    index_url = os.environ.get("FACESEARCH_INDEX_URL", "")
    if index_url.startswith("milvus://"):
        drop_prefix(index_url)  # the Milvus collections themselves
    else:
        shutil.rmtree(tmp_path / "index")
    rebuilt = open_service(tmp_path, database_url)
    assert rebuilt.index.count() == 2
    assert rebuilt.identify("c", person_photo(*BOB)).matches[0].person.external_id == "b"
    rebuilt.close()


def test_collection_crud(svc: FaceSearch, staff: str) -> None:
    listed = {c.name: c for c in svc.list_collections()}
    assert listed["staff"].person_count == 3 and listed["staff"].face_count == 5
    svc.update_collection("staff", title="Staff", settings={"default_threshold": 0.7})
    assert svc.get_collection("staff").settings["default_threshold"] == 0.7
    assert svc.identify("staff", person_photo(*ALICE)).threshold == 0.7
    svc.delete_collection("staff")
    assert svc.index.count() == 0
    with pytest.raises(NotFound):
        svc.get_collection("staff")


def test_a_person_with_several_faces_is_scored_by_their_template(svc: FaceSearch, staff: str) -> None:
    import numpy as np

    from fakes import colour_embedding

    faces = np.stack([colour_embedding(*ALICE, b) for b in (0, 3, 6)]).astype(np.float64)
    query = colour_embedding(*ALICE, 1).astype(np.float64)
    template = faces.mean(axis=0)  # the fake pack's embeddings are not unit: the plain mean
    by_template = float(np.linalg.norm(template - query))
    by_face = float(np.min(np.linalg.norm(faces - query, axis=1)))
    assert by_template != pytest.approx(by_face, abs=1e-4)
    default = svc.identify(staff, person_photo(*ALICE, 1)).matches[0]
    assert default.person.external_id == "alice"
    assert default.distance == pytest.approx(by_template, abs=1e-4)
    svc.update_collection(staff, settings={"person_score": "best_face"})
    best = svc.identify(staff, person_photo(*ALICE, 1)).matches[0]
    assert best.distance == pytest.approx(by_face, abs=1e-4)
    # Without deduplication every face is its own hit, at its own distance.
    raw = svc.identify(staff, person_photo(*ALICE, 1), deduplicate=False, threshold=0.0)
    assert raw.matches[0].distance == pytest.approx(by_face, abs=1e-4)
    with pytest.raises(ValidationError):
        svc.update_collection(staff, settings={"person_score": "median"})


def test_deferred_index_writes_are_caught_up_by_the_next_search(svc: FaceSearch, staff: str) -> None:
    # facesearch enroll defers the index's catch-up to its end; a search in between still sees
    # every committed face, because it syncs first.
    svc.follower.defer_writes = True
    try:
        before = svc.index.count(svc.collection(staff).pk)
        svc.create_person(staff, external_id="dora", name="Dora", images=[person_photo(*DORA)])
        assert svc.index.count(svc.collection(staff).pk) == before  # not applied yet
        result = svc.identify(staff, person_photo(*DORA, 1))
        assert [m.person.external_id for m in result.matches] == ["dora"]
        assert svc.index.count(svc.collection(staff).pk) == before + 1
    finally:
        svc.follower.defer_writes = False
