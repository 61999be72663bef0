"""Corrections people make: "this face is not this person" (negatives), "these two are different
people" (distinct pairs), merging two persons into one and splitting faces off into a new person."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, or_, select, update

from facesearch.domain import Negative, Person, check_label, check_metadata, face_limit_reached
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage._base import NO_SYNC, Ref, StoreBase, chunks
from facesearch.storage.records import (
    OP_ADD_FACE,
    OP_ADD_NEGATIVE,
    OP_REMOVE_FACE,
    OP_REMOVE_NEGATIVE,
    OP_REMOVE_PERSON,
    decode_embeddings,
    encode_embedding,
)
from facesearch.storage.tables import (
    DbDistinct,
    DbFace,
    DbMembership,
    DbNegative,
    DbPerson,
    DbRedirect,
    new_uid,
    utcnow,
)

#: How many negatives one person may have, and how many faces one split may move.
MAX_NEGATIVES_PER_PERSON = 100
MAX_SPLIT_FACES = 1000
METADATA_POLICIES = ("target", "source", "union")


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class CorrectionsMixin(StoreBase):
    """Negatives, distinct pairs, merge and split (see the module docstring)."""

    @staticmethod
    def _to_negative(row: DbNegative, person_uid: str, collection_uid: str) -> Negative:
        return Negative(row.uid, person_uid, collection_uid, row.source_face, row.created_at)

    # --- negatives ----------------------------------------------------------------

    def add_negative(
        self,
        collection_id: Ref,
        person: Ref,
        pack: str,
        embedding: npt.ArrayLike,
        thumbnail: bytes | None = None,
        *,
        from_face: Ref | None = None,
    ) -> tuple[Negative, str | None]:
        """Record "this face is not ``person``" with its embedding, in one transaction with its
        'add_negative' log entry. ``from_face``: the stored face it comes from; when that face is
        the person's own (a wrong enrolment, say by auto-enrol) it is deleted in the same
        transaction. Returns the negative and the id of the face deleted (None: none)."""
        data, dim = encode_embedding(embedding)
        with self._write(erases=True) as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            if pack != coll.pack:
                raise ValidationError(
                    f"pack {pack!r} is not the collection's pack {coll.pack!r}", field="pack"
                )
            have = int(s.scalar(select(func.count()).where(DbNegative.person_id == row.id)) or 0)
            if have >= MAX_NEGATIVES_PER_PERSON:
                raise ValidationError(
                    f"person {row.uid!r} already has {have} negatives (at most {MAX_NEGATIVES_PER_PERSON})",
                    field="negatives",
                    details={"person": row.uid, "limit": MAX_NEGATIVES_PER_PERSON},
                )
            removed: str | None = None
            source_uid: str | None = None
            if from_face is not None:
                face = self._face(s, coll, from_face)
                source_uid = face.uid
                if face.person_id == row.id:
                    removed = face.uid
                    fid = face.id
                    s.delete(face)
                    s.flush()
                    self._log(s, OP_REMOVE_FACE, coll.id, face_id=fid, person_id=row.id)
            neg = DbNegative(
                uid=new_uid("neg_"),
                person_id=row.id,
                collection_id=coll.id,
                pack=pack,
                dim=dim,
                embedding=data,
                thumbnail=bytes(thumbnail) if thumbnail is not None else None,
                source_face=source_uid,
            )
            s.add(neg)
            row.updated_at = utcnow()
            s.flush()
            self._log(s, OP_ADD_NEGATIVE, coll.id, person_id=row.id, payload={"negative": neg.uid})
            return self._to_negative(neg, row.uid, coll.uid), removed

    def list_negatives(self, collection_id: Ref, person: Ref) -> list[Negative]:
        """The person's negatives, oldest first."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            rows = s.scalars(select(DbNegative).where(DbNegative.person_id == row.id).order_by(DbNegative.id))
            return [self._to_negative(n, row.uid, coll.uid) for n in rows]

    def delete_negative(self, collection_id: Ref, person: Ref, negative: str) -> None:
        """Remove one negative of the person; logs one 'remove_negative'."""
        with self._write(erases=True) as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            neg = s.scalar(
                select(DbNegative).where(DbNegative.uid == negative, DbNegative.person_id == row.id)
            )
            if neg is None:
                raise NotFound(
                    f"negative {negative!r} not found", details={"negative": negative, "person": row.uid}
                )
            s.delete(neg)
            s.flush()
            self._log(s, OP_REMOVE_NEGATIVE, coll.id, person_id=row.id, payload={"negative": negative})

    def negative_thumbnail(self, collection_id: Ref, person: Ref, negative: str) -> bytes:
        """The thumbnail kept with a negative; NotFound when there is none."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            data = s.scalar(
                select(DbNegative.thumbnail).where(DbNegative.uid == negative, DbNegative.person_id == row.id)
            )
            if data is None:
                raise NotFound(f"negative {negative!r} has no thumbnail", details={"negative": negative})
            return bytes(data)

    def negatives_of(self, person_ids: Iterable[int]) -> dict[int, npt.NDArray[np.float32]]:
        """The negative embeddings of these persons (primary keys) as one (n, dim) matrix each;
        persons without negatives are left out. One query, for the search path."""

        def load(wanted: list[int]) -> dict[int, npt.NDArray[np.float32]]:
            found: dict[int, list[bytes]] = {}
            dims: dict[int, int] = {}
            with self._read() as s:
                for part in chunks(wanted):
                    stmt = select(DbNegative.person_id, DbNegative.dim, DbNegative.embedding).where(
                        DbNegative.person_id.in_(part)
                    )
                    for pid, dim, emb in s.execute(stmt):
                        found.setdefault(pid, []).append(emb)
                        dims[pid] = int(dim)
            out = {pid: decode_embeddings(blobs, dims[pid]) for pid, blobs in found.items()}
            for matrix in out.values():
                matrix.setflags(write=False)  # shared by later requests through the cache
            return out

        return self.cache.many(self._version_for_cache(), "negatives", (int(p) for p in person_ids), load)

    def negative_count(self) -> int:
        """How many negatives the store holds (every collection)."""
        with self._read() as s:
            return int(s.scalar(select(func.count()).select_from(DbNegative)) or 0)

    # --- different people ---------------------------------------------------------

    def set_distinct(self, collection_id: Ref, person: Ref, other: Ref, *, distinct: bool = True) -> None:
        """Record (or, with ``distinct=False``, forget) that two persons are different people."""
        with self._write() as s:
            coll = self._collection(s, collection_id)
            a, b = self._person(s, coll, person), self._person(s, coll, other)
            if a.id == b.id:
                raise ValidationError("a person cannot be different from themselves", field="person")
            lo, hi = _pair(a.id, b.id)
            row = s.get(DbDistinct, (lo, hi))
            if distinct and row is None:
                s.add(DbDistinct(person_a=lo, person_b=hi, collection_id=coll.id))
            elif not distinct:
                if row is None:
                    raise NotFound(
                        f"persons {a.uid!r} and {b.uid!r} are not recorded as different",
                        details={"person": a.uid, "other": b.uid},
                    )
                s.delete(row)
            s.flush()

    def list_distinct(self, collection_id: Ref, person: Ref) -> list[Person]:
        """The persons recorded as different from this one (without faces), oldest first."""
        with self._read() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            others = [
                b if a == row.id else a
                for a, b in s.execute(
                    select(DbDistinct.person_a, DbDistinct.person_b).where(
                        or_(DbDistinct.person_a == row.id, DbDistinct.person_b == row.id)
                    )
                )
            ]
            rows = list(s.scalars(select(DbPerson).where(DbPerson.id.in_(others)).order_by(DbPerson.id)))
            groups = self._groups_of(s, [r.id for r in rows])
            return [self._to_person(r, coll.uid, groups[r.id]) for r in rows]

    def distinct_pairs_of(self, person_ids: Iterable[int]) -> set[tuple[int, int]]:
        """The recorded different-people pairs (low pk, high pk) that involve any of these persons."""
        ids = sorted({int(p) for p in person_ids})
        if not ids:
            return set()

        def load(wanted: list[int]) -> dict[int, frozenset[tuple[int, int]]]:
            of: dict[int, set[tuple[int, int]]] = {p: set() for p in wanted}
            with self._read() as s:
                for part in chunks(wanted):
                    stmt = select(DbDistinct.person_a, DbDistinct.person_b).where(
                        or_(DbDistinct.person_a.in_(part), DbDistinct.person_b.in_(part))
                    )
                    for a, b in s.execute(stmt):
                        pair = (int(a), int(b))
                        for p in pair:
                            if p in of:
                                of[p].add(pair)
            return {p: frozenset(pairs) for p, pairs in of.items()}

        found = self.cache.many(self._version_for_cache(), "distinct", ids, load)
        return set().union(*found.values())

    # --- merge and split ----------------------------------------------------------

    def merge_persons(
        self,
        collection_id: Ref,
        target: Ref,
        source: Ref,
        *,
        metadata: str = "target",
        max_faces: int | None = None,
    ) -> Person:
        """Move every face, group, negative and different-people pair of ``source`` to ``target``
        and delete ``source``, in one transaction; ``source``'s id then answers NotFound with
        ``merged_into``. ``metadata``: "target" keeps the target's (default), "source" takes the
        source's, "union" adds the source's keys the target lacks. The target keeps its name and
        external id (the source's name when the target has none). Conflict when the two are
        recorded as different people; FaceLimitReached past ``max_faces``."""
        if metadata not in METADATA_POLICIES:
            raise ValidationError(f"metadata must be one of {', '.join(METADATA_POLICIES)}", field="metadata")
        with self._write() as s:
            coll = self._collection(s, collection_id)
            into, src = self._person(s, coll, target), self._person(s, coll, source)
            if into.id == src.id:
                raise ValidationError("a person cannot be merged into themselves", field="from")
            if s.get(DbDistinct, _pair(into.id, src.id)) is not None:
                raise Conflict(
                    f"persons {into.uid!r} and {src.uid!r} are recorded as different people: "
                    "remove that record first",
                    details={"person": into.uid, "from": src.uid, "reason": "DIFFERENT_PEOPLE"},
                )
            moving = list(s.scalars(select(DbFace.id).where(DbFace.person_id == src.id).order_by(DbFace.id)))
            have = int(s.scalar(select(func.count()).where(DbFace.person_id == into.id)) or 0)
            if max_faces is not None and have + len(moving) > max_faces:
                raise face_limit_reached(into.uid, have + len(moving), max_faces)
            # Faces: re-owned in place (same ids), the index told as remove + add.
            for part in chunks(moving):
                s.execute(
                    update(DbFace).where(DbFace.id.in_(part)).values(person_id=into.id),
                    execution_options=NO_SYNC,
                )
            for fid in moving:
                self._log(s, OP_REMOVE_FACE, coll.id, face_id=fid, person_id=src.id)
            # Groups: the union.
            mine = set(s.scalars(select(DbMembership.group_id).where(DbMembership.person_id == into.id)))
            theirs = set(s.scalars(select(DbMembership.group_id).where(DbMembership.person_id == src.id)))
            for gid in sorted(theirs - mine):
                s.add(DbMembership(person_id=into.id, group_id=gid))
            s.execute(delete(DbMembership).where(DbMembership.person_id == src.id), execution_options=NO_SYNC)
            # Negatives and different-people pairs follow the faces.
            s.execute(
                update(DbNegative).where(DbNegative.person_id == src.id).values(person_id=into.id),
                execution_options=NO_SYNC,
            )
            pairs = list(
                s.execute(
                    select(DbDistinct.person_a, DbDistinct.person_b).where(
                        or_(DbDistinct.person_a == src.id, DbDistinct.person_b == src.id)
                    )
                )
            )
            s.execute(
                delete(DbDistinct).where(or_(DbDistinct.person_a == src.id, DbDistinct.person_b == src.id)),
                execution_options=NO_SYNC,
            )
            for a, b in pairs:
                other = b if a == src.id else a
                lo, hi = _pair(into.id, other)
                if s.get(DbDistinct, (lo, hi)) is None:
                    s.add(DbDistinct(person_a=lo, person_b=hi, collection_id=coll.id))
            # Metadata and name.
            if metadata == "source":
                into.meta = dict(src.meta or {})
            elif metadata == "union":
                into.meta = check_metadata({**(src.meta or {}), **(into.meta or {})}, "metadata")
            if not into.name:
                into.name = src.name
            # Old ids of the source (and of persons merged into it before) now point at the target.
            s.execute(
                update(DbRedirect).where(DbRedirect.target_id == src.id).values(target_id=into.id),
                execution_options=NO_SYNC,
            )
            s.add(DbRedirect(uid=src.uid, collection_id=coll.id, target_id=into.id))
            src_id = src.id
            s.delete(src)
            into.updated_at = utcnow()
            s.flush()
            groups = self._groups_of(s, [into.id])[into.id]
            self._log(s, OP_REMOVE_PERSON, coll.id, person_id=src_id, payload={"face_ids": []})
            self._log_groups(s, coll.id, into.id, groups)
            for fid in moving:
                self._log(s, OP_ADD_FACE, coll.id, face_id=fid, person_id=into.id, payload={"moved": True})
            return self._to_person(into, coll.uid, groups, self._faces_of(s, into, coll.uid))

    def split_person(
        self,
        collection_id: Ref,
        person: Ref,
        faces: Sequence[str],
        *,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Iterable[str] = (),
    ) -> Person:
        """Move the chosen faces of a person to a new person (the rest stay), in one transaction.
        Every face must be the person's (NotFound otherwise); the new person gets ``groups``."""
        if not isinstance(faces, list | tuple) or not faces:
            raise ValidationError("name at least one face to move", field="faces")
        if len(faces) > MAX_SPLIT_FACES:
            raise ValidationError(f"at most {MAX_SPLIT_FACES} faces per split", field="faces")
        uid = new_uid("per_")
        ext = check_label(external_id, "external_id", 255) if external_id else uid
        meta = check_metadata(metadata or {}, "metadata")
        with self._write() as s:
            coll = self._collection(s, collection_id)
            row = self._person(s, coll, person)
            wanted = list(dict.fromkeys(str(f) for f in faces))
            found = {
                f.uid: f
                for f in s.scalars(select(DbFace).where(DbFace.uid.in_(wanted), DbFace.person_id == row.id))
            }
            missing = [f for f in wanted if f not in found]
            if missing:
                raise NotFound(
                    f"face {missing[0]!r} is not a face of person {row.uid!r}",
                    details={"face": missing[0], "person": row.uid},
                )
            self._external_id_taken(s, coll, ext or uid)
            new = DbPerson(
                uid=uid,
                collection_id=coll.id,
                external_id=ext or uid,
                name=check_label(name, "name", 255),
                meta=meta,
            )
            s.add(new)
            s.flush()
            effective = self._set_memberships(s, new, self._ensure_groups(s, coll, groups))
            moving = sorted(f.id for f in found.values())
            for part in chunks(moving):
                s.execute(
                    update(DbFace).where(DbFace.id.in_(part)).values(person_id=new.id),
                    execution_options=NO_SYNC,
                )
            row.updated_at = utcnow()
            s.flush()
            self._log_groups(s, coll.id, new.id, effective)
            for fid in moving:
                self._log(s, OP_REMOVE_FACE, coll.id, face_id=fid, person_id=row.id)
            for fid in moving:
                self._log(s, OP_ADD_FACE, coll.id, face_id=fid, person_id=new.id, payload={"moved": True})
            return self._to_person(new, coll.uid, effective, self._faces_of(s, new, coll.uid))
