"""Collections and API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from facesearch.domain import Collection, check_collection_name, check_kind
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage._base import NO_SYNC, Ref, StoreBase, check_json_object, check_text
from facesearch.storage.records import OP_DROP_COLLECTION, ROLES, ApiKeyRecord
from facesearch.storage.tables import (
    DbApiKey,
    DbCollection,
    DbFace,
    DbGroup,
    DbMembership,
    DbPerson,
    new_uid,
    utcnow,
)

_TOUCH_EVERY = timedelta(minutes=1)


def hash_key(plaintext: str) -> str:
    """The stored form of an API key: sha256 hex."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _new_key(name: str, role: str, collections: list[str] | None) -> tuple[DbApiKey, str]:
    """A new key's row (only the key's hash and first 8 characters) and the key itself."""
    plaintext = "fs_" + secrets.token_urlsafe(32)
    row = DbApiKey(
        uid=new_uid("key_"),
        name=name,
        prefix=plaintext[:8],
        key_hash=hash_key(plaintext),
        role=role,
        collections=collections,
    )
    return row, plaintext


class CollectionsMixin(StoreBase):
    """Collections and API keys."""

    # --- collections --------------------------------------------------------------

    def _counts(self, s: Session, collection_id: int) -> tuple[int, int]:
        persons = s.scalar(
            select(func.count()).select_from(DbPerson).where(DbPerson.collection_id == collection_id)
        )
        faces = s.scalar(
            select(func.count()).select_from(DbFace).where(DbFace.collection_id == collection_id)
        )
        return int(persons or 0), int(faces or 0)

    def _name_taken(self, s: Session, name: str) -> None:
        if s.scalar(select(DbCollection.id).where(DbCollection.name == name)) is not None:
            raise Conflict(f"collection name {name!r} is taken", details={"collection": name})

    def create_collection(
        self,
        name: str,
        title: str = "",
        description: str = "",
        kind: str = "internal",
        pack: str = "dlib",
        settings: dict[str, Any] | None = None,
    ) -> Collection:
        """Create an empty collection; Conflict when the name is taken."""
        row = DbCollection(
            uid=new_uid("col_"),
            name=check_collection_name(name),
            title=check_text(title, "title", 200),
            description=check_text(description, "description", 10_000),
            kind=check_kind(kind),
            pack=check_text(pack, "pack", 50, allow_empty=False),
            settings=check_json_object(settings or {}, "settings"),
        )
        with self._write() as s:
            self._name_taken(s, name)
            s.add(row)
            s.flush()
            return self._to_collection(row)

    def get_collection(self, ref: Ref) -> Collection:
        """A collection by primary key, uid or name, with its person and face counts."""
        with self._read() as s:
            row = self._collection(s, ref)
            return self._to_collection(row, *self._counts(s, row.id))

    def collection_info(self, ref: Ref) -> Collection:
        """A collection by primary key, uid or name, WITHOUT its counts (both None).

        For the request path: ``get_collection`` counts the collection's persons and faces,
        which at 1M faces costs tens of milliseconds per request (see bench/scale.py).
        """

        def load() -> Collection:
            with self._read() as s:
                return self._to_collection(self._collection(s, ref), None, None)

        return self.cache.one(self._version_for_cache(), "collection", ref, load)

    def collection_pk(self, ref: Ref) -> int:
        """The integer primary key of a collection given by uid or name."""
        with self._read() as s:
            return self._collection(s, ref).id

    def collection_pks(self) -> dict[int, str]:
        """Every collection's primary key mapped to its name (for the index)."""
        with self._read() as s:
            return {pk: name for pk, name in s.execute(select(DbCollection.id, DbCollection.name))}

    def list_collections(self) -> list[Collection]:
        """Every collection, oldest first, with person and face counts (one query)."""
        pc = (
            select(DbPerson.collection_id.label("cid"), func.count().label("n"))
            .group_by(DbPerson.collection_id)
            .subquery()
        )
        fc = (
            select(DbFace.collection_id.label("cid"), func.count().label("n"))
            .group_by(DbFace.collection_id)
            .subquery()
        )
        stmt = (
            select(DbCollection, func.coalesce(pc.c.n, 0), func.coalesce(fc.c.n, 0))
            .outerjoin(pc, pc.c.cid == DbCollection.id)
            .outerjoin(fc, fc.c.cid == DbCollection.id)
            .order_by(DbCollection.id)
        )
        with self._read() as s:
            return [self._to_collection(row, int(p), int(f)) for row, p, f in s.execute(stmt)]

    def update_collection(
        self,
        ref: Ref,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        kind: str | None = None,
        pack: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Collection:
        """Edit a collection; ``settings`` is merged key by key (a None value removes the key).

        Changing ``pack`` is refused (Conflict) once the collection holds faces.
        """
        with self._write() as s:
            row = self._collection(s, ref)
            if name is not None and name != row.name:
                self._name_taken(s, check_collection_name(name))
                row.name = name
            if title is not None:
                row.title = check_text(title, "title", 200)
            if description is not None:
                row.description = check_text(description, "description", 10_000)
            if kind is not None:
                row.kind = check_kind(kind)
            if pack is not None and pack != row.pack:
                check_text(pack, "pack", 50, allow_empty=False)
                if self._counts(s, row.id)[1]:
                    raise Conflict(
                        "the model pack of a collection with faces cannot change",
                        details={"collection": row.name, "pack": row.pack},
                    )
                row.pack = pack
            if settings is not None:
                merged = dict(row.settings or {})
                for key, value in check_json_object(settings, "settings").items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                row.settings = merged
            s.flush()
            return self._to_collection(row, *self._counts(s, row.id))

    def delete_collection(self, ref: Ref) -> None:
        """Delete a collection with its persons, groups and faces; logs one 'drop_collection'."""
        with self._write(erases=True) as s:
            row = self._collection(s, ref)
            cid = row.id
            persons = select(DbPerson.id).where(DbPerson.collection_id == cid)
            s.execute(
                delete(DbMembership).where(DbMembership.person_id.in_(persons)), execution_options=NO_SYNC
            )
            s.execute(delete(DbFace).where(DbFace.collection_id == cid), execution_options=NO_SYNC)
            s.execute(delete(DbGroup).where(DbGroup.collection_id == cid), execution_options=NO_SYNC)
            s.execute(delete(DbPerson).where(DbPerson.collection_id == cid), execution_options=NO_SYNC)
            s.delete(row)
            s.flush()
            self._log(s, OP_DROP_COLLECTION, cid, payload={"name": row.name, "uid": row.uid})

    # --- API keys -----------------------------------------------------------------

    @staticmethod
    def _to_key(row: DbApiKey, names: dict[str, str] | None = None) -> ApiKeyRecord:
        """The record of a key row; with ``names`` (uid -> name of every collection) it also
        says which of its collections still exist and what they are called now."""
        ids = tuple(row.collections) if row.collections is not None else None
        reaches = None
        if ids is not None and names is not None:
            reaches = tuple((uid, names[uid]) for uid in ids if uid in names)
        return ApiKeyRecord(
            id=row.uid,
            name=row.name,
            prefix=row.prefix,
            role=row.role,
            collections=ids,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            reaches=reaches,
        )

    @staticmethod
    def _collection_names(s: Session) -> dict[str, str]:
        return {uid: name for uid, name in s.execute(select(DbCollection.uid, DbCollection.name))}

    def create_first_api_key(self, name: str) -> tuple[ApiKeyRecord, str] | None:
        """An admin key when the store has no key at all (revoked ones count), else None.

        The check and the insert are one write transaction, so servers starting at once on one
        database create one first key between them, not one each.
        """
        row, plaintext = _new_key(check_text(name, "name", 100, allow_empty=False), "admin", None)
        with self._write() as s:
            if s.scalar(select(func.count()).select_from(DbApiKey)):
                return None
            s.add(row)
            s.flush()
            return self._to_key(row), plaintext

    def create_api_key(
        self, name: str, role: str, collections: list[str] | None = None
    ) -> tuple[ApiKeyRecord, str]:
        """A new key: its record and the plaintext (shown once; only its sha256 is stored).

        ``collections`` (ids or names) limits the key to those collections; they must exist,
        and the key is bound to their ids, so renaming a collection, or creating a new one
        with an old name, never changes what the key reaches.
        """
        check_text(name, "name", 100, allow_empty=False)
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
        if collections is not None and (
            not isinstance(collections, list)
            or not collections
            or not all(isinstance(c, str) and c.strip() for c in collections)
        ):
            raise ValidationError(
                "collections must be a non-empty list of collection ids or names "
                "(leave it out for a key that reaches every collection)",
                field="collections",
            )
        with self._write() as s:
            bound = None
            if collections is not None:
                bound = list(dict.fromkeys(self._collection(s, ref.strip()).uid for ref in collections))
            row, plaintext = _new_key(name.strip(), role, bound)
            s.add(row)
            s.flush()
            return self._to_key(row, self._collection_names(s)), plaintext

    def verify_api_key(self, plaintext: str) -> ApiKeyRecord | None:
        """The record of a valid key, else None (unknown or revoked).

        Records ``last_used_at`` at most once a minute, in a second short write transaction
        taken only when due, so checking a key does not queue behind writers.
        """
        if not isinstance(plaintext, str) or not plaintext:
            return None
        digest = hash_key(plaintext)

        def load() -> ApiKeyRecord | None:
            with self._read() as s:
                row = s.scalar(select(DbApiKey).where(DbApiKey.key_hash == digest))
                if row is None or row.revoked_at is not None:
                    return None
                return self._to_key(row)

        version = self._version_for_cache()
        record = self.cache.one(version, "key", digest, load)
        if record is None:
            return None
        now = utcnow()
        if record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY:
            if version is not None:  # the cached record learns its new last use
                self.cache.put(version, "key", digest, replace(record, last_used_at=now))
            with self._write(bump=False) as s:
                s.execute(
                    update(DbApiKey)
                    .where(DbApiKey.key_hash == digest, DbApiKey.revoked_at.is_(None))
                    .values(last_used_at=now),
                    execution_options=NO_SYNC,
                )
            record = replace(record, last_used_at=now)
        return record

    def list_api_keys(self, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """Every key's record, oldest first."""
        stmt = select(DbApiKey).order_by(DbApiKey.id)
        if not include_revoked:
            stmt = stmt.where(DbApiKey.revoked_at.is_(None))
        with self._read() as s:
            names = self._collection_names(s)
            return [self._to_key(r, names) for r in s.scalars(stmt)]

    def revoke_api_key(self, uid: str) -> ApiKeyRecord:
        """Revoke a key (idempotent); NotFound for an unknown id."""
        with self._write() as s:
            row = s.scalar(select(DbApiKey).where(DbApiKey.uid == uid))
            if row is None:
                raise NotFound(f"API key {uid!r} not found", details={"key": uid})
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.flush()
            return self._to_key(row, self._collection_names(s))

    def count_api_keys(self, active_only: bool = True) -> int:
        """How many keys exist (by default only those not revoked)."""
        stmt = select(func.count()).select_from(DbApiKey)
        if active_only:
            stmt = stmt.where(DbApiKey.revoked_at.is_(None))
        with self._read() as s:
            return int(s.scalar(stmt) or 0)
