"""Enrolment: the one place where photos become stored faces of persons.

Every way a face gets enrolled comes through here: creating a person with photos, adding a
face, auto-enrolment of a strong match from a search, and enrol-if-unknown. The rules: the
quality gate, liveness when asked for, the per-person face limit, no second copy of a photo,
and no near-duplicate kept by auto-enrolment.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np

from facesearch.domain import Collection, Face, FaceObservation, Match, Person, face_limit_reached
from facesearch.errors import Conflict, FaceLimitReached, FaceSearchError, ValidationError
from facesearch.imaging import source_crop, thumbnail_jpeg
from facesearch.pipeline import AnalyseOptions
from facesearch.pipeline.gate import QualityGate
from facesearch.pipeline.liveness import require_live
from facesearch.service.follower import IndexFollower
from facesearch.service.models import Models
from facesearch.service.options import EnrolOptions, SearchOptions
from facesearch.service.sources import SourceSeal
from facesearch.storage import NewFace, PersonFace, Store

# A query face this close to a stored face of the person is a near-duplicate: auto-enrol never
# stores it. Measured as a share of the pack's default decision distance, because the calibrated
# similarity saturates at 1.0 well before (dlib: similarity 1.0 from distance 0.35 down). For dlib:
# 0.3 x 0.613 = distance <= 0.18 (a re-encoded copy of the same photo scores ~0.05).
NEAR_DUPLICATE_DISTANCE_RATIO = 0.3
THUMBNAIL_SIDE = 160  # longer side of the stored face thumbnail, pixels


def stored_quality(face: FaceObservation) -> dict[str, object]:
    """The quality record kept with a stored face: the measurements and the detector's score."""
    return {**face.quality.to_dict(), "detection_score": round(face.detection.score, 3)}


def new_face(face: FaceObservation, data: bytes, source: bytes | None = None) -> NewFace:
    """What is stored of a face found in a photo: embedding, box, quality, thumbnail, photo hash,
    and the sealed source when the collection keeps them."""
    return NewFace(
        pack=face.pack,
        embedding=face.embedding,
        box=face.detection.box,
        quality=stored_quality(face),
        thumbnail=thumbnail_jpeg(face.chip, max_side=THUMBNAIL_SIDE),
        content_hash=hashlib.sha256(data).hexdigest(),
        source=source,
    )


class Enroller:
    """Turns photos into stored faces under the enrolment rules (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        models: Models,
        gate: QualityGate,
        follower: IndexFollower,
        seal: SourceSeal | None = None,
    ) -> None:
        self.store = store
        self.models = models
        self.gate = gate
        self.follower = follower
        self.seal = seal
        self._locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def unknown_lock(self, collection_pk: int) -> threading.Lock:
        """The lock that serialises enrol-if-unknown in one collection (in this process)."""
        with self._locks_lock:
            return self._locks.setdefault(collection_pk, threading.Lock())

    def face_from_photo(
        self, coll: Collection, data: bytes, options: EnrolOptions, *, position: int | None = None
    ) -> NewFace:
        """The face to enrol from one photo, analysed and checked; raises why it is refused.

        ``position``: the photo's place in a request of several (named in the error's details).
        """
        self.models.require_liveness(coll.pack, options.check_liveness)
        where: dict[str, object] = {} if position is None else {"image": position}
        analysis = self.models.analyse(
            coll.pack,
            data,
            AnalyseOptions(choice=options.face, crop=options.crop, liveness=options.check_liveness),
        )
        if options.check_liveness:
            try:
                require_live(analysis, single=True)
            except FaceSearchError as exc:
                exc.details.update(where)
                raise
        face = analysis.faces[0]
        self.gate.check(face.quality, crop=options.crop, details=where)
        return new_face(face, data, self.source(coll, face, data))

    def source(self, coll: Collection, face: FaceObservation, data: bytes) -> bytes | None:
        """The sealed source of a face to enrol, when the collection keeps sources (else None)."""
        if not coll.setting("keep_source"):
            return None
        if self.seal is None:
            raise ValidationError(
                f"collection {coll.name!r} keeps face sources (keep_source), but this server has no "
                "FACESEARCH_SOURCE_KEY to seal them with",
                field="keep_source",
            )
        b = face.detection.box
        crop = source_crop(
            data,
            (b.left, b.top, b.width, b.height),
            max_bytes=self.models.max_bytes,
            max_pixels=self.models.max_pixels,
        )
        return self.seal.seal(crop)

    def create_person(
        self,
        coll: Collection,
        *,
        external_id: str | None,
        name: str,
        metadata: dict[str, object] | None,
        groups: Sequence[str],
        images: Sequence[bytes],
        options: EnrolOptions,
    ) -> Person:
        """A new person with the chosen face of each photo, in one transaction: every photo is
        analysed and checked first, and one refused photo refuses the whole request."""
        limit = int(coll.setting("max_faces_per_person"))
        if len(images) > limit:
            raise ValidationError(f"at most {limit} images per person in this collection", field="images")
        faces = [self.face_from_photo(coll, data, options, position=i) for i, data in enumerate(images)]
        person = self.store.create_person(coll.pk, external_id, name, metadata, groups, faces=faces)
        self.follower.after_write()
        return person

    def add_face(self, coll: Collection, person: str, image: bytes, options: EnrolOptions) -> Face:
        """One more face of ``person``, within the collection's per-person limit."""
        target = self.store.get_person(coll.pk, person)
        limit = int(coll.setting("max_faces_per_person"))
        if len(target.faces) >= limit:
            raise face_limit_reached(target.id, len(target.faces), limit)
        return self._store(coll, target.id, self.face_from_photo(coll, image, options))

    def enroll_batch(
        self, coll: Collection, items: Sequence[PersonFace]
    ) -> list[Face | FaceSearchError | None]:
        """Store analysed faces of persons by external id in one transaction (``Store.enroll_faces``:
        a person is created at its first face; the per-person limit and the same-photo rule are
        checked per face inside the transaction); each item's stored face, refusal, or None when
        that photo was already enrolled for the person."""
        done = self.store.enroll_faces(coll.pk, items, max_faces=int(coll.setting("max_faces_per_person")))
        self.follower.after_write()
        return done

    def _store(self, coll: Collection, person: str, new: NewFace) -> Face:
        """Store one more face of a person; the face limit is checked again, and the same photo
        refused (Conflict), inside the write transaction: concurrent calls cannot go past either."""
        stored = self.store.add_face(
            coll.pk,
            person,
            new.pack,
            new.embedding,
            new.box,
            new.quality,
            new.thumbnail,
            new.content_hash,
            max_faces=int(coll.setting("max_faces_per_person")),
            source=new.source,
        )
        self.follower.after_write()
        return stored

    def auto_enroll(self, coll: Collection, found: FaceObservation, image: bytes, best: Match) -> str | None:
        """Keep a search's query face as one more reference of its best match, when it is worth
        it (strong match, good quality, room left, not a near-duplicate); the new face's id."""
        if best.similarity < float(coll.setting("auto_enroll_threshold")):
            return None
        if self.gate.reason(found.quality) is not None:
            return None
        known = self.store.person_embeddings(best.person.id)
        if len(known) >= int(coll.setting("max_faces_per_person")):
            return None
        pack = self.models.pack(coll.pack)
        if len(known):
            nearest = float(np.min(np.linalg.norm(known - found.embedding, axis=1)))
            decision = pack.distance_for_similarity(pack.default_threshold)
            if nearest <= NEAR_DUPLICATE_DISTANCE_RATIO * decision:
                return None
        try:
            return self._store(
                coll, best.person.id, new_face(found, image, self.source(coll, found, image))
            ).id
        except (Conflict, FaceLimitReached):  # the same photo, or the person filled up meanwhile
            return None

    def enroll_unknown(
        self, coll: Collection, found: FaceObservation, image: bytes, options: SearchOptions
    ) -> str:
        """A new person from a search's face that matched nobody; the person's id."""
        self.gate.check(found.quality, crop=options.crop)
        person = self.store.create_person(
            coll.pk,
            options.external_id,
            options.name or "",
            options.metadata,
            (),
            faces=[new_face(found, image, self.source(coll, found, image))],
        )
        self.follower.after_write()
        return person.id
