"""FaceSearch: the service that owns the pipeline, the SQL store and the vector index.

It knows nothing of HTTP. Every write returns only after its SQL transaction has
committed; the index is then brought up to date from the change log before the call
returns, so a caller always finds what it has just enrolled.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.analyzer import AnalyseRequest, Analyzer, LocalAnalyzer
from facesearch.config import Settings
from facesearch.domain import Collection, Face, FaceObservation, Group, Person
from facesearch.errors import FaceSearchError, ValidationError
from facesearch.imaging import thumbnail_jpeg
from facesearch.index import VectorIndex, open_index
from facesearch.pipeline import ModelPack, build_pack
from facesearch.pipeline.gate import DEFAULT_GATE, QualityGate
from facesearch.search import SearchMixin
from facesearch.storage import Change, NewFace, Store, open_store
from facesearch.storage.records import KINDS

log = logging.getLogger("facesearch.service")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SNAPSHOT_EVERY = 50_000  # changes applied between automatic index snapshots
DEFAULT_SETTINGS: dict[str, Any] = {
    "default_threshold": None,  # None: the pack's default
    "auto_enroll": False,
    "auto_enroll_threshold": 0.9,
    "max_faces_per_person": 20,
}


def _check_unit(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValidationError(f"{field} must be a number from 0 to 1", field=field)
    return float(value)


def validate_collection_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Collection settings with their types and ranges checked; unknown keys refused."""
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if key not in DEFAULT_SETTINGS:
            raise ValidationError(
                f"unknown collection setting {key!r}; known: {', '.join(DEFAULT_SETTINGS)}", field=key
            )
        if value is None:
            out[key] = None
        elif key in ("default_threshold", "auto_enroll_threshold"):
            out[key] = _check_unit(value, key)
        elif key == "auto_enroll":
            if not isinstance(value, bool):
                raise ValidationError("auto_enroll must be true or false", field=key)
            out[key] = value
        elif key == "max_faces_per_person":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise ValidationError("max_faces_per_person must be an integer from 1 to 1000", field=key)
            out[key] = value
    return out


class FaceSearch(SearchMixin):
    """Collections, persons, groups and faces, and 1:N / N:N search over them."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        index: VectorIndex | None = None,
        analyzer: Analyzer | None = None,
        packs: dict[str, ModelPack] | None = None,
        gate: QualityGate = DEFAULT_GATE,
    ) -> None:
        self.settings = settings or Settings()
        self._packs: dict[str, ModelPack] = dict(packs or {})
        self._packs_lock = threading.Lock()
        self.gate = gate
        self.snapshot_dir: Path | None = None
        if store is None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = open_store(self.settings.resolved_database_url)
        self.store = store
        if index is None:
            self.snapshot_dir = self.settings.data_dir / "index"
            index = open_index(self.settings.index_url, self.snapshot_dir)
        self.index = index
        self.analyzer: Analyzer = analyzer or LocalAnalyzer(self.pack)
        self._sync_lock = threading.Lock()
        self._last_snapshot_seq = self.index.applied_seq
        if self.index.applied_seq > self.store.last_seq():
            log.warning("index snapshot is ahead of the database: rebuilding the index from SQL")
            self._reset_index()
        self.sync()

    # --- plumbing -----------------------------------------------------------------

    def pack(self, name: str) -> ModelPack:
        """The model pack of that name (models load on first use)."""
        with self._packs_lock:
            if name not in self._packs:
                self._packs[name] = build_pack(name)
            return self._packs[name]

    def _reset_index(self) -> None:
        for partition in self.index.partitions():
            self.index.drop_partition(partition)
        self.index.applied_seq = 0

    def sync(self) -> int:
        """Apply change-log entries the index has not seen yet; returns how many."""
        applied = 0
        with self._sync_lock:
            while True:
                changes = self.store.changes_since(self.index.applied_seq, limit=10_000)
                if not changes:
                    break
                self._apply(changes)
                self.index.applied_seq = changes[-1].seq
                applied += len(changes)
            if (
                self.snapshot_dir is not None
                and self.index.applied_seq - self._last_snapshot_seq >= SNAPSHOT_EVERY
            ):
                self._save_snapshot()
        return applied

    def _apply(self, changes: Sequence[Change]) -> None:
        """Apply log entries in order, adding runs of new faces to the index in bulk."""
        idx = self.index
        pending: dict[int, list[Change]] = {}

        def flush() -> None:
            for partition, adds in pending.items():
                vectors = np.stack([c.embedding for c in adds if c.embedding is not None])
                idx.add(partition, [c.face_id or 0 for c in adds], [c.person_id or 0 for c in adds], vectors)
            pending.clear()

        for c in changes:
            if c.op == "add_face":
                if c.embedding is not None and c.face_id is not None and c.person_id is not None:
                    pending.setdefault(c.collection_id, []).append(c)
                    idx.set_person_groups(c.collection_id, c.person_id, c.groups or ())
                continue
            flush()
            if c.op == "remove_face" and c.face_id is not None:
                idx.remove_faces(c.collection_id, [c.face_id])
            elif c.op == "set_groups" and c.person_id is not None:
                idx.set_person_groups(c.collection_id, c.person_id, c.groups or ())
            elif c.op == "remove_person" and c.person_id is not None:
                idx.remove_person(c.collection_id, c.person_id)
            elif c.op == "drop_collection":
                idx.drop_partition(c.collection_id)
        flush()

    def _save_snapshot(self) -> None:
        if self.snapshot_dir is None:
            return
        self.index.save(self.snapshot_dir)
        self._last_snapshot_seq = self.index.applied_seq

    def close(self) -> None:
        """Save an index snapshot, stop the workers and release the database."""
        with self._sync_lock:
            if self.snapshot_dir is not None and self.index.applied_seq != self._last_snapshot_seq:
                self._save_snapshot()
        self.analyzer.close()
        self.store.close()

    def _analyse(self, pack: str, data: bytes, **options: Any) -> Any:
        request = AnalyseRequest(
            pack=pack,
            data=data,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_pixels,
            **options,
        )
        return self.analyzer.analyse(request)

    # --- collections --------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        *,
        title: str = "",
        description: str = "",
        kind: str = "internal",
        pack: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Collection:
        """Create a collection; its model pack is fixed for life."""
        if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("col_"):
            raise ValidationError(
                "name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                "(and not 'col_')",
                field="name",
            )
        if kind not in KINDS:
            raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
        pack_name = pack or self.settings.default_pack
        self.pack(pack_name)  # unknown packs are refused here
        merged = {**DEFAULT_SETTINGS, **validate_collection_settings(settings)}
        return self.store.create_collection(name, title, description, kind, pack_name, merged)

    def get_collection(self, ref: str) -> Collection:
        """A collection by id or name, with person and face counts."""
        return self.store.get_collection(ref)

    def list_collections(self) -> list[Collection]:
        """Every collection with its counts."""
        return self.store.list_collections()

    def update_collection(self, ref: str, **fields: Any) -> Collection:
        """Edit title, description, kind or settings (the pack cannot change)."""
        allowed = {"title", "description", "kind", "settings", "name"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        if "name" in fields and fields["name"] is not None:
            name = fields["name"]
            if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("col_"):
                raise ValidationError("invalid collection name", field="name")
        if fields.get("kind") is not None and fields["kind"] not in KINDS:
            raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
        if fields.get("settings") is not None:
            fields["settings"] = validate_collection_settings(fields["settings"])
        result = self.store.update_collection(ref, **{k: v for k, v in fields.items() if v is not None})
        return result

    def delete_collection(self, ref: str) -> None:
        """Delete a collection with every person, face and thumbnail in it."""
        self.store.delete_collection(ref)
        self.sync()

    def collection_setting(self, coll: Collection, key: str) -> Any:
        """A collection's setting, falling back to the defaults."""
        value = coll.settings.get(key, DEFAULT_SETTINGS[key])
        if key == "default_threshold" and value is None:
            return self.pack(coll.pack).default_threshold
        return value

    # --- persons and faces ----------------------------------------------------------

    def _new_face(self, face: FaceObservation, data: bytes) -> NewFace:
        return NewFace(
            pack=face.pack,
            embedding=face.embedding,
            box=face.detection.box,
            quality={**face.quality.to_dict(), "detection_score": round(face.detection.score, 3)},
            thumbnail=thumbnail_jpeg(face.chip, max_side=160),
            content_hash=hashlib.sha256(data).hexdigest(),
        )

    def _enrolment_face(
        self,
        coll: Collection,
        data: bytes,
        *,
        choice: str = "central",
        crop: bool = False,
        index: int | None = None,
        check_liveness: bool = False,
    ) -> NewFace:
        self._require_liveness(self.pack(coll.pack), check_liveness)
        analysis = self._analyse(coll.pack, data, choice=choice, crop=crop, liveness=check_liveness)
        if check_liveness:
            try:
                self._check_liveness(analysis, check_liveness, single=True)
            except FaceSearchError as exc:
                if index is not None:
                    exc.details["image"] = index
                raise
        face = analysis.faces[0]
        self.gate.check(face.quality, crop=crop, details={} if index is None else {"image": index})
        return self._new_face(face, data)

    def create_person(
        self,
        collection: str,
        *,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Sequence[str] = (),
        images: Sequence[bytes] = (),
        crop: bool = False,
        check_liveness: bool = False,
    ) -> Person:
        """Create a person, enrolling the central face of each image in the same transaction.

        Every image is analysed and quality-checked before anything is written: one
        refused photo refuses the whole request (details name the image's position).
        ``check_liveness``: each photo must also pass liveness (LIVENESS_FAILED otherwise).
        """
        coll = self.store.collection_info(collection)
        limit = self.collection_setting(coll, "max_faces_per_person")
        if len(images) > limit:
            raise ValidationError(f"at most {limit} images per person in this collection", field="images")
        faces = [
            self._enrolment_face(coll, data, crop=crop, index=i, check_liveness=check_liveness)
            for i, data in enumerate(images)
        ]
        person = self.store.create_person(coll.id, external_id, name, metadata, groups, faces=faces)
        self.sync()
        return person

    def get_person(self, collection: str, person: str) -> Person:
        """A person with their faces."""
        return self.store.get_person(self.store.collection_info(collection).id, person)

    def list_persons(
        self,
        collection: str,
        *,
        group: str | None = None,
        external_id: str | None = None,
        name_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Person], str | None]:
        """A page of persons and the cursor of the next page (None at the end)."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be from 1 to 1000", field="limit")
        coll = self.store.collection_info(collection)
        return self.store.list_persons(coll.id, group, external_id, name_prefix, limit, cursor)

    def update_person(self, collection: str, person: str, **fields: Any) -> Person:
        """Edit name, external id, metadata or groups."""
        coll = self.store.collection_info(collection)
        result = self.store.update_person(coll.id, person, **fields)
        self.sync()
        return result

    def delete_person(self, collection: str, person: str) -> None:
        """Delete a person with every face, embedding and thumbnail."""
        coll = self.store.collection_info(collection)
        self.store.delete_person(coll.id, person)
        self.sync()

    def add_face(
        self,
        collection: str,
        person: str,
        image: bytes,
        *,
        face: str = "central",
        crop: bool = False,
        check_liveness: bool = False,
    ) -> Face:
        """Enrol one more face of a person (the face nearest the centre when several)."""
        coll = self.store.collection_info(collection)
        target = self.store.get_person(coll.id, person)
        limit = self.collection_setting(coll, "max_faces_per_person")
        if len(target.faces) >= limit:
            raise ValidationError(
                f"this person already has {len(target.faces)} faces, the collection's limit",
                field="max_faces_per_person",
            )
        new = self._enrolment_face(coll, image, choice=face, crop=crop, check_liveness=check_liveness)
        if new.content_hash and self.store.find_face_by_hash(coll.id, target.id, new.content_hash):
            from facesearch.errors import Conflict

            raise Conflict("this photo is already enrolled for this person", details={"person": target.id})
        stored = self.store.add_face(
            coll.id, target.id, new.pack, new.embedding, new.box, new.quality, new.thumbnail, new.content_hash
        )
        self.sync()
        return stored

    def delete_face(self, collection: str, face: str) -> None:
        """Remove one face (its embedding and thumbnail)."""
        coll = self.store.collection_info(collection)
        self.store.delete_face(coll.id, face)
        self.sync()

    def face_image(self, face: str) -> tuple[Face, bytes]:
        """A face and its stored thumbnail (JPEG)."""
        return self.store.get_face(face), self.store.get_face_thumbnail(face)

    # --- groups -----------------------------------------------------------------------

    def create_group(self, collection: str, name: str) -> Group:
        """Create a group in a collection."""
        return self.store.create_group(self.store.collection_info(collection).id, name)

    def list_groups(self, collection: str) -> list[Group]:
        """Groups with their person counts (the implicit ``default`` first)."""
        return self.store.list_groups(self.store.collection_info(collection).id)

    def delete_group(self, collection: str, group: str) -> None:
        """Delete a group; its persons stay, without that membership."""
        self.store.delete_group(self.store.collection_info(collection).id, group)
        self.sync()

    def add_member(self, collection: str, group: str, person: str) -> Person:
        """Put a person in a group (created when missing)."""
        result = self.store.add_member(self.store.collection_info(collection).id, group, person)
        self.sync()
        return result

    def remove_member(self, collection: str, group: str, person: str) -> Person:
        """Take a person out of a group."""
        result = self.store.remove_member(self.store.collection_info(collection).id, group, person)
        self.sync()
        return result

    def counts(self) -> dict[str, int]:
        """Collections and faces held, for the health route."""
        return {"collections": len(self.store.list_collections()), "faces": self.index.count()}

    def persons_by_ids(self, ids: Iterable[int]) -> dict[int, Person]:
        """Persons by their integer keys, in one query."""
        return self.store.get_persons_by_ids(ids)
