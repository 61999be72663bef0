"""Persons and groups, with the implicit 'default' group."""

from __future__ import annotations

import pytest
from storage_helpers import BOX, vec

from facesearch.domain import Collection
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage import Store


def test_create_and_get(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "emp-1", "Ann Lee", {"dept": "R&D"}, groups=["vip", "staff", "vip"])
    assert p.id.startswith("per_") and len(p.id) == 20
    assert (p.collection_id, p.external_id, p.name, p.metadata) == (
        coll.id,
        "emp-1",
        "Ann Lee",
        {"dept": "R&D"},
    )
    assert p.groups == ("staff", "vip")
    got = store.get_person("staff", p.id)
    assert got.groups == ("staff", "vip") and got.faces == ()
    assert store.get_person(coll.id, store.person_pk(coll.id, p.id)).id == p.id
    assert store.create_person(coll.id).external_id.startswith("per_")  # defaults to the uid


def test_duplicate_external_id_conflicts_per_collection(store: Store, coll: Collection) -> None:
    store.create_person(coll.id, "emp-1")
    with pytest.raises(Conflict) as info:
        store.create_person(coll.id, "emp-1")
    assert info.value.details == {"collection": "staff", "external_id": "emp-1"}
    other = store.create_collection("other")
    store.create_person(other.id, "emp-1")  # fine elsewhere
    second = store.create_person(coll.id, "emp-2")
    with pytest.raises(Conflict):
        store.update_person(coll.id, second.id, external_id="emp-1")


def test_person_not_found_and_wrong_collection(store: Store, coll: Collection) -> None:
    other = store.create_collection("other")
    p = store.create_person(other.id, "x")
    with pytest.raises(NotFound) as info:
        store.get_person(coll.id, p.id)
    assert info.value.details == {"person": p.id, "collection": "staff"}
    with pytest.raises(NotFound):
        store.get_person(coll.id, "per_missing")
    with pytest.raises(NotFound):
        store.create_person("missing", "x")


def test_groups_must_be_a_list(store: Store, coll: Collection) -> None:
    with pytest.raises(ValidationError) as info:
        store.create_person(coll.id, "e", groups="vip")
    assert info.value.details["field"] == "groups"


def test_bad_metadata_refused(store: Store, coll: Collection) -> None:
    with pytest.raises(ValidationError) as info:
        store.create_person(coll.id, "e", metadata={"x": object()})
    assert info.value.details["field"] == "metadata"


def test_update_person(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "e1", "Ann", {"a": 1}, ["g1"])
    seq = store.last_seq()
    u = store.update_person(coll.id, p.id, name="Anne", metadata={"b": 2}, external_id="e9")
    assert (u.name, u.metadata, u.external_id, u.groups) == ("Anne", {"b": 2}, "e9", ("g1",))
    assert u.updated_at >= p.updated_at
    assert store.changes_since(seq) == []  # no group change, nothing for the index
    u = store.update_person(coll.id, p.id, groups=["g2", "g3"])
    assert u.groups == ("g2", "g3")
    u = store.update_person(coll.id, p.id, groups=[])
    assert u.groups == ("default",)
    changes = store.changes_since(seq)
    assert [(c.op, c.groups) for c in changes] == [("set_groups", ("g2", "g3")), ("set_groups", ("default",))]
    assert changes[0].payload == {"groups": ["g2", "g3"]}


def test_get_persons_by_ids(store: Store, coll: Collection) -> None:
    other = store.create_collection("other")
    a = store.create_person(coll.id, "a", groups=["g"])
    b = store.create_person(other.id, "b")
    ids = [store.person_pk(coll.id, a.id), store.person_pk(other.id, b.id)]
    got = store.get_persons_by_ids(ids + [12345])
    assert set(got) == set(ids)
    assert got[ids[0]].external_id == "a" and got[ids[0]].groups == ("g",)
    assert got[ids[1]].collection_id == other.id and got[ids[1]].groups == ("default",)
    assert store.get_persons_by_ids([]) == {}


def test_pagination_covers_every_row_once(store: Store, coll: Collection) -> None:
    made = [store.create_person(coll.id, f"e{i:03d}", f"name {i}").id for i in range(23)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.list_persons(coll.id, limit=5, cursor=cursor)
        seen.extend(p.id for p in page)
        pages += 1
        if cursor is None:
            break
    assert seen == made and pages == 5
    page, cursor = store.list_persons(coll.id, limit=23)
    assert len(page) == 23 and cursor is None
    with pytest.raises(ValidationError):
        store.list_persons(coll.id, cursor="!!garbage")
    with pytest.raises(ValidationError):
        store.list_persons(coll.id, limit=0)
    with pytest.raises(ValidationError):
        store.list_persons(coll.id, limit=1001)


def test_list_filters(store: Store, coll: Collection) -> None:
    store.create_person(coll.id, "e1", "Alice", groups=["vip"])
    store.create_person(coll.id, "e2", "alan", groups=["vip", "staff"])
    store.create_person(coll.id, "e3", "Bob")
    store.create_person(coll.id, "e4", "al_x")

    def names(**kw: object) -> list[str]:
        return [p.name for p in store.list_persons(coll.id, **kw)[0]]  # type: ignore[arg-type]

    assert names(group="vip") == ["Alice", "alan"]
    assert names(group="staff") == ["alan"]
    assert names(group="default") == ["Bob", "al_x"]
    assert names(group="nosuch") == []
    assert names(external_id="e3") == ["Bob"]
    assert names(name_prefix="AL") == ["Alice", "alan", "al_x"]
    assert names(name_prefix="al_") == ["al_x"]  # '_' is not a wildcard
    assert names(group="vip", name_prefix="ala") == ["alan"]


def test_delete_person(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "e1", groups=["g"])
    store.delete_person(coll.id, p.id)
    with pytest.raises(NotFound):
        store.get_person(coll.id, p.id)
    with pytest.raises(NotFound):
        store.delete_person(coll.id, p.id)
    assert store.list_groups(coll.id)[1].person_count == 0


def test_groups_crud_and_default(store: Store, coll: Collection) -> None:
    g = store.create_group(coll.id, "vip")
    assert g.id.startswith("grp_") and g.collection_id == coll.id
    with pytest.raises(Conflict):
        store.create_group(coll.id, "vip")
    with pytest.raises(Conflict):
        store.create_group(coll.id, "default")
    with pytest.raises(ValidationError):
        store.create_group(coll.id, "grp_x")
    a = store.create_person(coll.id, "a", groups=["vip"])
    store.create_person(coll.id, "b")
    store.create_person(coll.id, "c", groups=["staff"])
    listed = [(x.name, x.person_count) for x in store.list_groups(coll.id)]
    assert listed == [("default", 1), ("staff", 1), ("vip", 1)]
    assert [x.name for x in store.list_groups(coll.id, include_default=False)] == ["staff", "vip"]
    assert store.get_group(coll.id, g.id).person_count == 1
    assert store.get_group(coll.id, "vip").id == g.id
    with pytest.raises(NotFound):
        store.get_group(coll.id, "nope")
    with pytest.raises(ValidationError):
        store.delete_group(coll.id, "default")

    seq = store.last_seq()
    store.delete_group(coll.id, g.id)
    assert store.get_person(coll.id, a.id).groups == ("default",)
    changes = store.changes_since(seq)
    assert [(c.op, c.person_id, c.groups) for c in changes] == [
        ("set_groups", store.person_pk(coll.id, a.id), ("default",))
    ]
    assert [x.name for x in store.list_groups(coll.id)] == ["default", "staff"]
    with pytest.raises(NotFound):
        store.delete_group(coll.id, "vip")


def test_membership(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    pk = store.person_pk(coll.id, p.id)
    seq = store.last_seq()
    assert store.add_member(coll.id, "vip", p.id).groups == ("vip",)  # group created by name
    assert store.add_member(coll.id, "vip", p.id).groups == ("vip",)  # idempotent, no log entry
    assert store.add_member(coll.id, "night", p.id).groups == ("night", "vip")
    assert store.remove_member(coll.id, "vip", p.id).groups == ("night",)
    assert store.remove_member(coll.id, store.get_group(coll.id, "night").id, p.id).groups == ("default",)
    with pytest.raises(NotFound):
        store.remove_member(coll.id, "vip", p.id)
    with pytest.raises(NotFound):
        store.add_member(coll.id, "grp_unknownunknown", p.id)
    with pytest.raises(ValidationError):
        store.add_member(coll.id, "default", p.id)
    groups = [(c.op, c.person_id, c.groups) for c in store.changes_since(seq)]
    assert groups == [
        ("set_groups", pk, ("vip",)),
        ("set_groups", pk, ("night", "vip")),
        ("set_groups", pk, ("night",)),
        ("set_groups", pk, ("default",)),
    ]
    assert [p.external_id for p in store.list_persons(coll.id, group="default")[0]] == ["a"]


def test_person_with_faces(store: Store, coll: Collection) -> None:
    p = store.create_person(coll.id, "a")
    f1 = store.add_face(coll.id, p.id, "dlib", vec(1), BOX, {"sharpness": 3.5})
    f2 = store.add_face(coll.id, p.id, "dlib", vec(2), BOX)
    got = store.get_person(coll.id, p.id)
    assert [f.id for f in got.faces] == [f1.id, f2.id]
    assert got.faces[0].quality == {"sharpness": 3.5} and got.faces[0].box == BOX
