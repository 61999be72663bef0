"""Persons and groups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from facesearch.domain import DEFAULT_GROUP, Group, Person, check_label, check_metadata
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage._base import NO_SYNC, Ref, StoreBase, chunks
from facesearch.storage.records import (
    DEFAULT_GROUP_ID,
    OP_REMOVE_PERSON,
    OP_SET_GROUPS,
    NewFace,
    decode_cursor,
    encode_cursor,
)
from facesearch.storage.tables import (
    DbCollection,
    DbFace,
    DbGroup,
    DbMembership,
    DbPerson,
    new_uid,
    utcnow,
)

MAX_LIMIT = 1000


def _check_group_name(name: Any) -> str:
    clean = check_label(name, "name", 100, allow_empty=False, comma=False)
    if clean.startswith("grp_"):
        raise ValidationError("a group name may not start with 'grp_'", field="name")
    return clean


class PersonsMixin(StoreBase):
    """Persons and groups of a collection."""

    # --- persons ------------------------------------------------------------------

    def _external_id_taken(self, s: Session, coll: DbCollection, external_id: str) -> None:
        stmt = select(DbPerson.id).where(
            DbPerson.collection_id == coll.id, DbPerson.external_id == external_id
        )
        if s.scalar(stmt) is not None:
            raise Conflict(
                f"external_id {external_id!r} is taken in collection {coll.name!r}",
                details={"collection": coll.name, "external_id": external_id},
            )

    def _log_groups(self, s: Session, coll_id: int, person_id: int, groups: tuple[str, ...]) -> None:
        self._log(s, OP_SET_GROUPS, coll_id, person_id=person_id, payload={"groups": list(groups)})

    def create_person(
        self,
        collection_id: Ref,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Iterable[str] = (),
        faces: Sequence[NewFace] = (),
    ) -> Person:
        """Create a person (external_id defaults to the new uid); missing groups are created.

        ``faces`` are stored in the same transaction, so the person never exists half
        enrolled. Conflict when the external_id is taken. Logs one 'set_groups' and one
        'add_face' per face.
        """
        uid = new_uid("per_")
        ext = check_label(external_id, "external_id", 255) if external_id else uid
        ext = ext or uid
        meta = check_metadata(metadata or {}, "metadata")
        with self._write() as s:
            coll = self._collection(s, collection_id)
            self._external_id_taken(s, coll, ext)
            row = DbPerson(
                uid=uid,
                collection_id=coll.id,
                external_id=ext,
                name=check_label(name, "name", 255),
                meta=meta,
            )
            s.add(row)
            s.flush()
            effective = self._set_memberships(s, row, self._ensure_groups(s, coll, groups))
            self._log_groups(s, coll.id, row.id, effective)
            stored = [self._insert_face(s, coll, row, face) for face in faces]
            person = self._to_person(row, coll.uid, effective)
            return replace(person, faces=tuple(self._to_face(f, row.uid, coll.uid) for f in stored))

    def get_person(self, collection_id: Ref, ref: Ref) -> Person:
        """A person of the collection (by uid or primary key), with its faces."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, ref)
            groups = self._groups_of(s, [row.id])[row.id]
            return self._to_person(row, coll.uid, groups, self._faces_of(s, row, coll.uid))

    def person_pk(self, collection_id: Ref, ref: Ref) -> int:
        """The integer primary key of a person of the collection given by uid."""
        with self._read() as s:
            return self._person(s, self._collection(s, collection_id), ref).id

    def get_persons_by_ids(self, ids: Iterable[int]) -> dict[int, Person]:
        """Persons (without faces) by primary key, any collection; missing ids are left out."""

        def load(wanted: list[int]) -> dict[int, Person]:
            out: dict[int, Person] = {}
            with self._read() as s:
                rows: list[tuple[DbPerson, str]] = []
                for part in chunks(wanted):
                    stmt = (
                        select(DbPerson, DbCollection.uid)
                        .join(DbCollection, DbCollection.id == DbPerson.collection_id)
                        .where(DbPerson.id.in_(part))
                    )
                    rows.extend((p, c) for p, c in s.execute(stmt))
                groups = self._groups_of(s, [p.id for p, _ in rows])
                for person, coll_uid in rows:
                    out[person.id] = self._to_person(person, coll_uid, groups[person.id])
            return out

        return self.cache.many(self._version_for_cache(), "person", (int(i) for i in ids), load)

    def list_persons(
        self,
        collection_id: Ref,
        group: str | None = None,
        external_id: str | None = None,
        name_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Person], str | None]:
        """One page of persons (oldest first, without faces) and the cursor of the next page.

        ``group='default'`` lists persons in no group; an unknown group gives an empty page.
        ``name_prefix`` matches case-insensitively.
        """
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be from 1 to {MAX_LIMIT}", field="limit")
        with self._read() as s:
            coll = self._collection(s, collection_id)
            stmt = select(DbPerson).where(DbPerson.collection_id == coll.id)
            if cursor:
                stmt = stmt.where(DbPerson.id > decode_cursor(cursor))
            if group is not None:
                member = exists().where(DbMembership.person_id == DbPerson.id)
                if group == DEFAULT_GROUP:
                    stmt = stmt.where(~member)
                else:
                    grp = self._group(s, coll, group)
                    if grp is None:
                        return [], None
                    stmt = stmt.where(member.where(DbMembership.group_id == grp.id))
            if external_id is not None:
                stmt = stmt.where(DbPerson.external_id == external_id)
            if name_prefix:
                stmt = stmt.where(func.lower(DbPerson.name).startswith(name_prefix.lower(), autoescape=True))
            rows = list(s.scalars(stmt.order_by(DbPerson.id).limit(limit + 1)))
            more = len(rows) > limit
            rows = rows[:limit]
            groups = self._groups_of(s, [r.id for r in rows])
            persons = [self._to_person(r, coll.uid, groups[r.id]) for r in rows]
            return persons, encode_cursor(rows[-1].id) if more else None

    def update_person(
        self,
        collection_id: Ref,
        ref: Ref,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        external_id: str | None = None,
        groups: Iterable[str] | None = None,
    ) -> Person:
        """Edit a person; None leaves a field as it is, ``metadata`` and ``groups`` replace.

        Conflict on a taken external_id; a change of groups logs one 'set_groups'.
        """
        with self._write() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, ref)
            if name is not None:
                row.name = check_label(name, "name", 255)
            if metadata is not None:
                row.meta = check_metadata(metadata, "metadata")
            if external_id is not None:
                external_id = check_label(external_id, "external_id", 255, allow_empty=False)
            if external_id is not None and external_id != row.external_id:
                self._external_id_taken(s, coll, external_id)
                row.external_id = external_id
            before = self._groups_of(s, [row.id])[row.id]
            effective = before
            if groups is not None:
                effective = self._set_memberships(s, row, self._ensure_groups(s, coll, groups))
                if effective != before:
                    self._log_groups(s, coll.id, row.id, effective)
            row.updated_at = utcnow()
            s.flush()
            return self._to_person(row, coll.uid, effective, self._faces_of(s, row, coll.uid))

    def delete_person(self, collection_id: Ref, ref: Ref) -> str:
        """Delete a person with its faces (embeddings, thumbnails); logs one 'remove_person'.
        Returns the deleted person's id (``ref`` may be the external id)."""
        with self._write(erases=True) as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, ref)
            pid = row.id
            face_ids = list(s.scalars(select(DbFace.id).where(DbFace.person_id == pid).order_by(DbFace.id)))
            s.execute(delete(DbFace).where(DbFace.person_id == pid), execution_options=NO_SYNC)
            s.execute(delete(DbMembership).where(DbMembership.person_id == pid), execution_options=NO_SYNC)
            s.delete(row)
            s.flush()
            self._log(s, OP_REMOVE_PERSON, coll.id, person_id=pid, payload={"face_ids": face_ids})
            return row.uid

    # --- groups -------------------------------------------------------------------

    def create_group(self, collection_id: Ref, name: str) -> Group:
        """Create a group; Conflict when the name is taken (``default`` always is)."""
        name = _check_group_name(name)
        with self._write() as s:
            coll = self._collection(s, collection_id)
            if name == DEFAULT_GROUP or self._group(s, coll, name) is not None:
                raise Conflict(
                    f"group {name!r} already exists", details={"collection": coll.name, "group": name}
                )
            row = DbGroup(uid=new_uid("grp_"), collection_id=coll.id, name=name)
            s.add(row)
            s.flush()
            return self._to_group(row, coll.uid)

    def get_group(self, collection_id: Ref, ref: str) -> Group:
        """A group by uid or name, with its person count."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            row = self._require_group(s, coll, ref)
            count = s.scalar(
                select(func.count()).select_from(DbMembership).where(DbMembership.group_id == row.id)
            )
            return self._to_group(row, coll.uid, int(count or 0))

    def list_groups(self, collection_id: Ref, include_default: bool = True) -> list[Group]:
        """Groups by name with person counts; the implicit ``default`` group first, when asked."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            counts = (
                select(DbMembership.group_id.label("gid"), func.count().label("n"))
                .group_by(DbMembership.group_id)
                .subquery()
            )
            stmt = (
                select(DbGroup, func.coalesce(counts.c.n, 0))
                .outerjoin(counts, counts.c.gid == DbGroup.id)
                .where(DbGroup.collection_id == coll.id)
                .order_by(DbGroup.name)
            )
            out = [self._to_group(g, coll.uid, int(n)) for g, n in s.execute(stmt)]
            if include_default:
                alone = s.scalar(
                    select(func.count())
                    .select_from(DbPerson)
                    .where(
                        DbPerson.collection_id == coll.id,
                        ~exists().where(DbMembership.person_id == DbPerson.id),
                    )
                )
                default = Group(DEFAULT_GROUP_ID, coll.uid, DEFAULT_GROUP, coll.created_at, int(alone or 0))
                out.insert(0, default)
            return out

    def delete_group(self, collection_id: Ref, ref: str) -> None:
        """Delete a group and its memberships; logs 'set_groups' for each person that was in it."""
        if ref in (DEFAULT_GROUP, DEFAULT_GROUP_ID):
            raise ValidationError("the default group cannot be deleted", field="group")
        with self._write() as s:
            coll = self._collection(s, collection_id)
            row = self._require_group(s, coll, ref)
            affected = list(
                s.scalars(
                    select(DbMembership.person_id)
                    .where(DbMembership.group_id == row.id)
                    .order_by(DbMembership.person_id)
                )
            )
            s.execute(delete(DbMembership).where(DbMembership.group_id == row.id), execution_options=NO_SYNC)
            s.delete(row)
            s.flush()
            now = utcnow()
            for part in chunks(affected):
                s.execute(
                    update(DbPerson).where(DbPerson.id.in_(part)).values(updated_at=now),
                    execution_options=NO_SYNC,
                )
            for pid, groups in self._groups_of(s, affected).items():
                self._log_groups(s, coll.id, pid, groups)

    def _change_membership(self, collection_id: Ref, group: str, person: Ref, add: bool) -> Person:
        if group in (DEFAULT_GROUP, DEFAULT_GROUP_ID):
            raise ValidationError(
                "membership of the default group follows from having no other group", field="group"
            )
        with self._write() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            if add:
                grp = self._ensure_groups(s, coll, [group])[0]
            else:
                grp = self._require_group(s, coll, group)
            link = s.get(DbMembership, (row.id, grp.id))
            changed = False
            if add and link is None:
                s.add(DbMembership(person_id=row.id, group_id=grp.id))
                changed = True
            elif not add:
                if link is None:
                    raise NotFound(
                        f"person {row.uid!r} is not in group {grp.name!r}",
                        details={"collection": coll.name, "group": grp.name, "person": row.uid},
                    )
                s.delete(link)
                changed = True
            s.flush()
            groups = self._groups_of(s, [row.id])[row.id]
            if changed:
                row.updated_at = utcnow()
                self._log_groups(s, coll.id, row.id, groups)
            return self._to_person(row, coll.uid, groups)

    def add_member(self, collection_id: Ref, group: str, person: Ref) -> Person:
        """Put a person in a group (by uid, or by name: created when missing); idempotent."""
        return self._change_membership(collection_id, group, person, add=True)

    def remove_member(self, collection_id: Ref, group: str, person: Ref) -> Person:
        """Take a person out of a group; NotFound when it was not in it."""
        return self._change_membership(collection_id, group, person, add=False)
