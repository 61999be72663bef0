"""Pack migrations in SQL: the job row, the shadow embeddings (face_vectors) and the switch."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select, update

from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.storage._base import NO_SYNC, Ref, StoreBase, chunks
from facesearch.storage.records import OP_ADD_FACE, OP_DROP_COLLECTION, encode_embedding
from facesearch.storage.tables import (
    DbCollection,
    DbFace,
    DbFaceSource,
    DbFaceVector,
    DbMigration,
    DbNegative,
    DbUnknown,
    new_uid,
    utcnow,
)

RUNNING, BLOCKED, DONE, CANCELLED = "running", "blocked", "done", "cancelled"


@dataclass(frozen=True)
class MigrationRecord:
    """A pack migration as stored, with its progress counted now."""

    id: str
    collection_id: str
    from_pack: str
    to_pack: str
    state: str
    total: int  # faces of the collection now
    done: int  # of those, embedded with the new pack
    failed: dict[str, str]  # face id -> why it cannot be embedded again
    drop_failed: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    result: dict[str, Any]


@dataclass(frozen=True)
class FaceToMigrate:
    pk: int
    id: str
    source: bytes | None


class MigrationsMixin(StoreBase):
    """The SQL side of pack migrations (service/migrations.py runs them)."""

    def _record(self, s: Any, m: DbMigration, coll_uid: str) -> MigrationRecord:
        total = int(s.scalar(select(func.count()).where(DbFace.collection_id == m.collection_id)) or 0)
        done = int(
            s.scalar(
                select(func.count())
                .select_from(DbFaceVector)
                .join(DbFace, DbFace.id == DbFaceVector.face_id)
                .where(DbFace.collection_id == m.collection_id, DbFaceVector.pack == m.to_pack)
            )
            or 0
        )
        info = dict(m.failed or {})
        return MigrationRecord(
            id=m.uid,
            collection_id=coll_uid,
            from_pack=m.from_pack,
            to_pack=m.to_pack,
            state=m.state,
            total=total,
            done=done if m.state != DONE else total,
            failed=dict(info.get("faces", {})),
            drop_failed=bool(m.drop_failed),
            created_at=m.created_at,
            updated_at=m.updated_at,
            finished_at=m.finished_at,
            result=dict(info.get("result", {})),
        )

    @staticmethod
    def _migration(s: Any, coll: DbCollection, migration: str) -> DbMigration:
        m = s.scalar(
            select(DbMigration).where(DbMigration.uid == migration, DbMigration.collection_id == coll.id)
        )
        if m is None:
            raise NotFound(f"migration {migration!r} not found", details={"migration": migration})
        return m  # type: ignore[no-any-return]

    def create_migration(
        self, collection_id: Ref, to_pack: str, *, drop_failed: bool = False
    ) -> MigrationRecord:
        """Start moving a collection to ``to_pack``. Conflict while another migration of it runs;
        ValidationError when faces have no source and ``drop_failed`` is not given."""
        with self._write() as s:
            coll = self._collection(s, collection_id)
            if to_pack == coll.pack:
                raise ValidationError(f"collection {coll.name!r} already uses pack {to_pack!r}", field="pack")
            busy = s.scalar(
                select(DbMigration.uid).where(
                    DbMigration.collection_id == coll.id, DbMigration.state.in_((RUNNING, BLOCKED))
                )
            )
            if busy is not None:
                raise Conflict(
                    f"migration {busy} of collection {coll.name!r} is not finished: cancel it first",
                    details={"migration": busy},
                )
            without = int(
                s.scalar(
                    select(func.count())
                    .select_from(DbFace)
                    .outerjoin(DbFaceSource, DbFaceSource.face_id == DbFace.id)
                    .where(DbFace.collection_id == coll.id, DbFaceSource.face_id.is_(None))
                )
                or 0
            )
            if without and not drop_failed:
                raise ValidationError(
                    f"{without} face(s) of collection {coll.name!r} have no stored source to embed again "
                    "(the collection setting keep_source was off when they were enrolled): enrol them "
                    "again, or pass drop_unmigratable to delete them at the switch",
                    field="pack",
                    details={"without_source": without},
                )
            m = DbMigration(
                uid=new_uid("mig_"),
                collection_id=coll.id,
                from_pack=coll.pack,
                to_pack=to_pack,
                state=RUNNING,
                drop_failed=int(drop_failed),
                failed={},
            )
            s.add(m)
            s.flush()
            return self._record(s, m, coll.uid)

    def get_migration(self, collection_id: Ref, migration: str) -> MigrationRecord:
        with self._read() as s:
            coll = self._collection(s, collection_id)
            m = self._migration(s, coll, migration)
            return self._record(s, m, coll.uid)

    def list_migrations(
        self, collection_id: Ref | None = None, *, running: bool = False
    ) -> list[MigrationRecord]:
        """Migrations of a collection (or of all), oldest first; ``running``: only running ones."""
        with self._read() as s:
            stmt = select(DbMigration, DbCollection.uid).join(
                DbCollection, DbCollection.id == DbMigration.collection_id
            )
            if collection_id is not None:
                stmt = stmt.where(DbMigration.collection_id == self._collection(s, collection_id).id)
            if running:
                stmt = stmt.where(DbMigration.state == RUNNING)
            return [self._record(s, m, uid) for m, uid in s.execute(stmt.order_by(DbMigration.id))]

    def cancel_migration(self, collection_id: Ref, migration: str) -> MigrationRecord:
        """Stop a migration and forget its shadow embeddings; a finished one cannot be cancelled."""
        with self._write() as s:
            coll = self._collection(s, collection_id)
            m = self._migration(s, coll, migration)
            if m.state in (DONE, CANCELLED):
                raise Conflict(f"migration {migration} is already {m.state}", details={"state": m.state})
            faces = select(DbFace.id).where(DbFace.collection_id == coll.id)
            s.execute(
                delete(DbFaceVector).where(DbFaceVector.pack == m.to_pack, DbFaceVector.face_id.in_(faces)),
                execution_options=NO_SYNC,
            )
            m.state, m.updated_at, m.finished_at = CANCELLED, utcnow(), utcnow()
            s.flush()
            return self._record(s, m, coll.uid)

    def faces_to_migrate(self, migration: str, limit: int) -> tuple[str, list[FaceToMigrate]]:
        """(state, next faces without a new-pack embedding and not failed, with their sealed source)."""
        with self._read() as s:
            m = s.scalar(select(DbMigration).where(DbMigration.uid == migration))
            if m is None or m.state != RUNNING:
                return (m.state if m is not None else CANCELLED), []
            failed = set((m.failed or {}).get("faces", {}))
            have = select(DbFaceVector.face_id).where(DbFaceVector.pack == m.to_pack)
            stmt = (
                select(DbFace.id, DbFace.uid, DbFaceSource.data)
                .outerjoin(DbFaceSource, DbFaceSource.face_id == DbFace.id)
                .where(DbFace.collection_id == m.collection_id, DbFace.id.not_in(have))
                .order_by(DbFace.id)
                .limit(limit + len(failed))
            )
            out = [
                FaceToMigrate(pk, uid, bytes(d) if d is not None else None) for pk, uid, d in s.execute(stmt)
            ]
            return m.state, [f for f in out if f.id not in failed][:limit]

    def save_migrated(
        self,
        migration: str,
        vectors: Sequence[tuple[int, npt.NDArray[np.float32]]],
        failed: dict[str, str],
    ) -> None:
        """Store new-pack embeddings (faces still there, not yet stored) and failures, in one write."""
        with self._write() as s:
            m = s.scalar(select(DbMigration).where(DbMigration.uid == migration))
            if m is None or m.state != RUNNING:
                return
            ids = [pk for pk, _ in vectors]
            alive = set(s.scalars(select(DbFace.id).where(DbFace.id.in_(ids)))) if ids else set()
            stored = select(DbFaceVector.face_id).where(
                DbFaceVector.pack == m.to_pack, DbFaceVector.face_id.in_(ids)
            )
            have = set(s.scalars(stored)) if ids else set()
            for pk, vec in vectors:
                if pk in alive and pk not in have:
                    data, dim = encode_embedding(vec)
                    s.add(DbFaceVector(face_id=pk, pack=m.to_pack, dim=dim, embedding=data))
            if failed:
                info = dict(m.failed or {})
                info["faces"] = {**info.get("faces", {}), **failed}
                m.failed = info
            m.updated_at = utcnow()

    def negatives_to_migrate(self, migration: str) -> list[tuple[str, bytes | None]]:
        """(negative id, thumbnail) of the collection's negatives not yet embedded by the new pack."""
        with self._read() as s:
            m = s.scalar(select(DbMigration).where(DbMigration.uid == migration))
            if m is None:
                return []
            done = set((m.failed or {}).get("negatives", {}))
            stmt = select(DbNegative.uid, DbNegative.thumbnail).where(
                DbNegative.collection_id == m.collection_id
            )
            return [
                (uid, bytes(t) if t is not None else None) for uid, t in s.execute(stmt) if uid not in done
            ]

    def save_migrated_negatives(
        self, migration: str, vectors: dict[str, npt.NDArray[np.float32] | None]
    ) -> None:
        """New-pack embeddings of negatives (None: could not be embedded, dropped at the switch)."""
        with self._write() as s:
            m = s.scalar(select(DbMigration).where(DbMigration.uid == migration))
            if m is None or m.state != RUNNING:
                return
            info = dict(m.failed or {})
            negs = dict(info.get("negatives", {}))
            for uid, vec in vectors.items():
                negs[uid] = None if vec is None else base64.b64encode(encode_embedding(vec)[0]).decode()
            info["negatives"] = negs
            m.failed = info

    def switch_migration(self, migration: str) -> MigrationRecord | None:
        """Switch the collection to the new pack in one transaction when every face has its new
        embedding (or failed, and failures are to be dropped): faces take their new embeddings,
        failed faces are deleted, negatives take theirs (or are dropped), remembered unknown faces
        are forgotten, the collection's pack changes, and the index is told to rebuild the
        partition from SQL. None when faces are still missing (new ones came in); a record in
        state "blocked" when faces failed and are not to be dropped."""
        with self._write(erases=True) as s:
            m = s.scalar(select(DbMigration).where(DbMigration.uid == migration))
            if m is None or m.state != RUNNING:
                return None
            coll = s.get(DbCollection, m.collection_id)
            assert coll is not None
            info = dict(m.failed or {})
            failed = dict(info.get("faces", {}))
            have = select(DbFaceVector.face_id).where(DbFaceVector.pack == m.to_pack)
            missing = list(
                s.scalars(select(DbFace.uid).where(DbFace.collection_id == coll.id, DbFace.id.not_in(have)))
            )
            negs = dict(info.get("negatives", {}))
            negatives = list(s.scalars(select(DbNegative).where(DbNegative.collection_id == coll.id)))
            if set(missing) - set(failed) or any(n.uid not in negs for n in negatives):
                return None  # faces or negatives added meanwhile: embed them first
            if missing and not m.drop_failed:
                m.state, m.updated_at = BLOCKED, utcnow()
                s.flush()
                return self._record(s, m, coll.uid)
            dropped = 0
            if missing:
                for part in chunks(missing):
                    result = s.execute(
                        delete(DbFace).where(DbFace.collection_id == coll.id, DbFace.uid.in_(part)),
                        execution_options=NO_SYNC,
                    )
                    dropped += int(getattr(result, "rowcount", 0) or 0)
            rows = s.execute(
                select(DbFaceVector.face_id, DbFaceVector.dim, DbFaceVector.embedding)
                .join(DbFace, DbFace.id == DbFaceVector.face_id)
                .where(DbFace.collection_id == coll.id, DbFaceVector.pack == m.to_pack)
            ).all()
            for fid, dim, emb in rows:
                s.execute(
                    update(DbFace).where(DbFace.id == fid).values(embedding=emb, dim=dim, pack=m.to_pack),
                    execution_options=NO_SYNC,
                )
            for ids in chunks([r[0] for r in rows]):
                s.execute(
                    delete(DbFaceVector).where(DbFaceVector.face_id.in_(ids)),
                    execution_options=NO_SYNC,
                )
            negatives_dropped = 0
            for neg in negatives:
                vec = negs.get(neg.uid)
                if vec is None:
                    s.delete(neg)
                    negatives_dropped += 1
                    continue
                data = base64.b64decode(vec)
                neg.embedding, neg.dim, neg.pack = data, len(data) // 4, m.to_pack
            forgot = s.execute(
                delete(DbUnknown).where(DbUnknown.collection_id == coll.id),
                execution_options=NO_SYNC,
            )
            coll.pack = m.to_pack
            s.flush()
            payload = {"name": coll.name, "uid": coll.uid, "migrated": True, "pack": m.to_pack}
            self._log(s, OP_DROP_COLLECTION, coll.id, payload=payload)
            for fid, _, _ in rows:
                pid = s.scalar(select(DbFace.person_id).where(DbFace.id == fid))
                self._log(s, OP_ADD_FACE, coll.id, face_id=fid, person_id=pid, payload={"pack": m.to_pack})
            info["result"] = {
                "faces": len(rows),
                "faces_dropped": dropped,
                "negatives_dropped": negatives_dropped,
                "unknown_faces_forgotten": int(getattr(forgot, "rowcount", 0) or 0),
            }
            m.failed = info
            m.state, m.updated_at, m.finished_at = DONE, utcnow(), utcnow()
            s.flush()
            return self._record(s, m, coll.uid)
