"""The searching half of FaceSearch: identify, search, identify-all, verify, detect."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from facesearch.domain import (
    Collection,
    FaceObservation,
    FaceResult,
    IdentifyAllResult,
    IdentifyResult,
    Match,
    QueryFace,
    VerifyResult,
)
from facesearch.errors import Conflict, LivenessFailed, LivenessUnavailable, ValidationError
from facesearch.index import Hit

if TYPE_CHECKING:
    from facesearch.config import Settings
    from facesearch.index import VectorIndex
    from facesearch.pipeline import ModelPack
    from facesearch.pipeline.gate import QualityGate
    from facesearch.storage import NewFace, Store

FACE_CHOICES = ("central", "largest")
SEARCH_MODES = ("fast", "accurate")
# A query face this close to a stored face of the person is a near-duplicate: auto-enrol never
# stores it. Measured as a share of the pack's default decision distance, because the calibrated
# similarity saturates at 1.0 well before (dlib: similarity 1.0 from distance 0.35 down). For dlib:
# 0.3 x 0.613 = distance <= 0.18 (a re-encoded copy of the same photo scores ~0.05).
NEAR_DUPLICATE_DISTANCE_RATIO = 0.3


def query_face(face: FaceObservation) -> QueryFace:
    """What the caller is told about a face found in their photo."""
    d = face.detection
    return QueryFace(box=d.box, score=d.score, landmarks=d.landmarks, quality=face.quality)


def check_search_params(
    top_k: int,
    threshold: float | None,
    face: str,
    search_mode: str,
    max_false_positive_rate: float | None = None,
) -> None:
    """Refuse out-of-range search parameters before any work is done."""
    if max_false_positive_rate is not None:
        if threshold is not None:
            raise ValidationError(
                "give either threshold or max_false_positive_rate, not both", field="max_false_positive_rate"
            )
        rate = max_false_positive_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 < rate < 1.0:
            raise ValidationError(
                "max_false_positive_rate must be a number between 0 and 1 (both excluded)",
                field="max_false_positive_rate",
            )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise ValidationError("top_k must be an integer from 1 to 100", field="top_k")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0
    ):
        raise ValidationError("threshold must be a number from 0 to 1", field="threshold")
    if face not in FACE_CHOICES:
        raise ValidationError("face must be 'central' or 'largest'", field="face")
    if search_mode not in SEARCH_MODES:
        raise ValidationError("search_mode must be 'fast' or 'accurate'", field="search_mode")


class SearchMixin:
    """Search operations; mixed into FaceSearch, which provides the attributes below."""

    if TYPE_CHECKING:
        settings: Settings
        store: Store
        index: VectorIndex
        gate: QualityGate

        def pack(self, name: str) -> ModelPack: ...
        def sync(self) -> int: ...
        def _analyse(self, pack: str, data: bytes, **options: Any) -> Any: ...
        def collection_setting(self, coll: Collection, key: str) -> Any: ...
        def _new_face(self, face: FaceObservation, data: bytes) -> NewFace: ...

    # --- helpers --------------------------------------------------------------------

    def _collections(self, refs: Sequence[str]) -> list[Collection]:
        if not refs:
            raise ValidationError("name at least one collection", field="collections")
        colls = [self.store.collection_info(r) for r in refs]
        packs = {c.pack for c in colls}
        if len(packs) > 1:
            raise ValidationError(
                "collections of different model packs cannot be searched together: "
                + ", ".join(f"{c.name} ({c.pack})" for c in colls),
                field="collections",
            )
        return colls

    def _matches(
        self,
        hits: list[Hit],
        pack: ModelPack,
        names: dict[int, str],
        *,
        return_metadata: bool,
        return_thumbnails: bool,
    ) -> tuple[Match, ...]:
        persons = self.store.get_persons_by_ids({h.person_id for h in hits})
        faces = self.store.get_faces_by_ids([h.face_id for h in hits])
        thumbs = self.store.get_thumbnails_by_ids([h.face_id for h in hits]) if return_thumbnails else {}
        out: list[Match] = []
        for h in hits:
            person = persons.get(h.person_id)
            face = faces.get(h.face_id)
            if person is None or face is None:  # deleted between index search and lookup
                continue
            if not return_metadata:
                from dataclasses import replace

                person = replace(person, metadata={})
            out.append(
                Match(
                    rank=len(out) + 1,
                    similarity=round(pack.similarity(h.distance), 6),
                    distance=round(h.distance, 6),
                    person=person,
                    face_id=face.id,
                    collection=names.get(h.partition, ""),
                    thumbnail=thumbs.get(h.face_id),
                )
            )
        return tuple(out)

    def _require_liveness(self, pack: ModelPack, check_liveness: bool) -> None:
        """Refuse before any work when liveness is asked for and the pack cannot check it."""
        if check_liveness:
            pack.require_liveness()

    def _check_liveness(self, analysis: Any, check_liveness: bool, *, single: bool) -> None:
        """Raise LivenessFailed when a face of ``analysis`` is not judged live.

        ``single``: one face is wanted (identify, enrol), so a second face of comparable
        size fails with TOO_MANY_FACES. ``details``: the first face's ``reason`` and, per
        failing face, its box, reason and scores.
        """
        if not check_liveness:
            return
        from facesearch.pipeline.liveness import liveness_reason

        scores = tuple(getattr(analysis, "liveness", ()))
        if len(scores) != len(analysis.faces):
            raise LivenessUnavailable("liveness was asked for, but the faces were not scored")
        failed = []
        for face, score in zip(analysis.faces, scores, strict=True):
            why = liveness_reason(score, face.quality, single=single)
            if why is not None:
                failed.append({"box": face.detection.box.to_dict(), "reason": why, "scores": score.to_dict()})
        if failed:
            reason = failed[0]["reason"]
            raise LivenessFailed(
                f"liveness check failed: {str(reason).lower().replace('_', ' ')}",
                details={"reason": reason, "faces": failed},
            )

    def _search_threshold(
        self,
        coll: Collection,
        pack: ModelPack,
        threshold: float | None,
        max_false_positive_rate: float | None,
        gallery_size: int,
    ) -> tuple[float, float | None]:
        """(similarity threshold to report, largest distance to accept; None: no limit).

        ``max_false_positive_rate`` is the chance that a stranger's photo matches anyone in a
        search over ``gallery_size`` enrolled faces; with comparisons taken as independent that
        allows a per-comparison false-match rate of 1 - (1 - rate)^(1/N), about rate / N, which the
        pack's calibration table turns into a distance. Past FMR 1e-6 the similarity reads 1.0 but
        the distance stays exact.
        """
        if max_false_positive_rate is not None:
            from facesearch.pipeline.calibration import pack_calibration

            table = pack_calibration(pack)
            if table is None:
                raise ValidationError(
                    f"model pack {pack.name!r} has no calibration table, so max_false_positive_rate "
                    "cannot be turned into a threshold: give threshold instead",
                    field="max_false_positive_rate",
                )
            n = max(1, gallery_size)
            rate = float(max_false_positive_rate)
            return table.threshold_for_gallery(rate, n), table.distance_for_gallery(rate, n)
        limit = self.collection_setting(coll, "default_threshold") if threshold is None else float(threshold)
        return limit, pack.distance_for_similarity(limit) if limit > 0 else None

    # --- identify -------------------------------------------------------------------

    def identify(
        self,
        collection: str,
        image: bytes,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        max_false_positive_rate: float | None = None,
        deduplicate: bool = True,
        return_metadata: bool = True,
        return_thumbnails: bool = False,
        groups: Sequence[str] | None = None,
        face: str = "central",
        crop: bool = False,
        search_mode: str = "fast",
        auto_enroll: bool | None = None,
        check_liveness: bool = False,
        enroll_if_unknown: bool = False,
        external_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IdentifyResult:
        """Who is this? The best ``top_k`` matches in one collection (1:N)."""
        return self.search(
            [collection],
            image,
            top_k=top_k,
            threshold=threshold,
            max_false_positive_rate=max_false_positive_rate,
            deduplicate=deduplicate,
            return_metadata=return_metadata,
            return_thumbnails=return_thumbnails,
            groups=groups,
            face=face,
            crop=crop,
            search_mode=search_mode,
            auto_enroll=auto_enroll,
            check_liveness=check_liveness,
            enroll_if_unknown=enroll_if_unknown,
            external_id=external_id,
            name=name,
            metadata=metadata,
        )

    def search(
        self,
        collections: Sequence[str],
        image: bytes,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        max_false_positive_rate: float | None = None,
        deduplicate: bool = True,
        return_metadata: bool = True,
        return_thumbnails: bool = False,
        groups: Sequence[str] | None = None,
        face: str = "central",
        crop: bool = False,
        search_mode: str = "fast",
        auto_enroll: bool | None = None,
        check_liveness: bool = False,
        enroll_if_unknown: bool = False,
        external_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IdentifyResult:
        """Identify over one or more collections of the same model pack; matches name their collection.

        ``threshold`` is a similarity; ``max_false_positive_rate`` instead asks for the threshold
        that keeps a stranger's chance of matching anyone at that rate, for the number of faces in
        the searched collections (every enrolled face counts, also when deduplicating persons or
        filtering by group: the conservative count). The result's ``threshold`` is the one used.
        """
        started = time.perf_counter()
        check_search_params(top_k, threshold, face, search_mode, max_false_positive_rate)
        colls = self._collections(collections)
        if (enroll_if_unknown or auto_enroll) and len(colls) > 1:
            raise ValidationError("enrolment from a search needs exactly one collection", field="collections")
        first = colls[0]
        pack = self.pack(first.pack)
        self._require_liveness(pack, check_liveness)
        if max_false_positive_rate is not None:
            self._search_threshold(first, pack, None, max_false_positive_rate, 1)  # refuse before work
        analysis = self._analyse(first.pack, image, choice=face, crop=crop, liveness=check_liveness)
        self._check_liveness(analysis, check_liveness, single=True)
        found: FaceObservation = analysis.faces[0]
        self.sync()
        t0 = time.perf_counter()
        pks = [self.store.collection_pk(c.id) for c in colls]
        searched = sum(self.index.count(pk) for pk in pks)
        limit, max_distance = self._search_threshold(
            first, pack, threshold, max_false_positive_rate, searched
        )
        names = {pk: c.name for pk, c in zip(pks, colls, strict=True)}
        hits = self.index.search(
            pks,
            found.embedding,
            top_k,
            groups=list(groups) if groups else None,
            unique_persons=deduplicate,
            max_distance=max_distance,
            exact=search_mode == "accurate",
        )
        search_ms = (time.perf_counter() - t0) * 1000
        matches = self._matches(
            hits, pack, names, return_metadata=return_metadata, return_thumbnails=return_thumbnails
        )
        auto_face_id = created_id = None
        if matches and (
            self.collection_setting(first, "auto_enroll") if auto_enroll is None else auto_enroll
        ):
            auto_face_id = self._auto_enroll(first, found, image, matches[0])
        elif not matches and enroll_if_unknown:
            self.gate.check(found.quality, crop=crop)
            person = self.store.create_person(
                first.id, external_id, name or "", metadata, (), faces=[self._new_face(found, image)]
            )
            self.sync()
            created_id = person.id
        timings = {**analysis.timings.to_dict(), "search_ms": round(search_ms, 3)}
        return IdentifyResult(
            matches=matches,
            face=query_face(found),
            threshold=limit,
            searched=searched,
            query_time_ms=round((time.perf_counter() - started) * 1000, 2),
            timings=timings,
            auto_enrolled_face_id=auto_face_id,
            created_person_id=created_id,
        )

    def _auto_enroll(self, coll: Collection, found: FaceObservation, image: bytes, best: Match) -> str | None:
        """Keep the query face as one more reference of the best match, when it is worth it."""
        if best.similarity < float(self.collection_setting(coll, "auto_enroll_threshold")):
            return None
        if self.gate.reason(found.quality) is not None:
            return None
        person = best.person
        known = self.store.person_embeddings(person.id)
        if len(known) >= int(self.collection_setting(coll, "max_faces_per_person")):
            return None
        pack = self.pack(coll.pack)
        if len(known):
            nearest = float(np.min(np.linalg.norm(known - found.embedding, axis=1)))
            decision = pack.distance_for_similarity(pack.default_threshold)
            if nearest <= NEAR_DUPLICATE_DISTANCE_RATIO * decision:
                return None
        new = self._new_face(found, image)
        try:
            stored = self.store.add_face(
                coll.id,
                person.id,
                new.pack,
                new.embedding,
                new.box,
                new.quality,
                new.thumbnail,
                new.content_hash,
            )
        except Conflict:
            return None
        self.sync()
        return stored.id

    # --- identify-all -----------------------------------------------------------------

    def identify_all(
        self,
        collection: str,
        image: bytes,
        *,
        top_k: int = 1,
        threshold: float | None = None,
        max_false_positive_rate: float | None = None,
        groups: Sequence[str] | None = None,
        search_mode: str = "fast",
        max_faces: int = 20,
        min_face_size: int = 32,
        output_size: int | None = 160,
        output_aspect: float = 1.0,
        return_metadata: bool = True,
        check_liveness: bool = False,
    ) -> IdentifyAllResult:
        """Every face of a photo with its matches (N:N), and the faces nobody matched.

        ``max_false_positive_rate`` applies to each face's search, as in ``search``.
        """
        started = time.perf_counter()
        check_search_params(top_k, threshold, "central", search_mode, max_false_positive_rate)
        if not 1 <= max_faces <= 100:
            raise ValidationError("max_faces must be from 1 to 100", field="max_faces")
        if not 8 <= min_face_size <= 4096:
            raise ValidationError("min_face_size must be from 8 to 4096 pixels", field="min_face_size")
        if output_size is not None and not 16 <= output_size <= 1024:
            raise ValidationError("output_size must be from 16 to 1024", field="output_size")
        if not 0.25 <= output_aspect <= 4.0:
            raise ValidationError("output_aspect must be from 0.25 to 4", field="output_aspect")
        coll = self.store.collection_info(collection)
        pack = self.pack(coll.pack)
        self._require_liveness(pack, check_liveness)
        if max_false_positive_rate is not None:
            self._search_threshold(coll, pack, None, max_false_positive_rate, 1)  # refuse before work
        analysis = self._analyse(
            coll.pack,
            image,
            every_face=True,
            min_face_size=min_face_size,
            max_faces=max_faces,
            crop_output=(output_size, output_aspect),
            liveness=check_liveness,
        )
        self._check_liveness(analysis, check_liveness, single=False)
        self.sync()
        pk = self.store.collection_pk(coll.id)
        limit, max_distance = self._search_threshold(
            coll, pack, threshold, max_false_positive_rate, self.index.count(pk)
        )
        t0 = time.perf_counter()
        queries = np.stack([f.embedding for f in analysis.faces])
        all_hits = self.index.search_batch(
            [pk],
            queries,
            top_k,
            groups=list(groups) if groups else None,
            unique_persons=True,
            max_distance=max_distance,
            exact=search_mode == "accurate",
        )
        search_ms = (time.perf_counter() - t0) * 1000
        recognised: list[FaceResult] = []
        unknown: list[FaceResult] = []
        for f, crop, hits in zip(analysis.faces, analysis.crops, all_hits, strict=True):
            matches = self._matches(
                hits, pack, {pk: coll.name}, return_metadata=return_metadata, return_thumbnails=False
            )
            (recognised if matches else unknown).append(FaceResult(query_face(f), crop, matches))
        return IdentifyAllResult(
            faces=tuple(recognised),
            unrecognized=tuple(unknown),
            threshold=limit,
            searched=self.index.count(pk),
            query_time_ms=round((time.perf_counter() - started) * 1000, 2),
            timings={**analysis.timings.to_dict(), "search_ms": round(search_ms, 3)},
        )

    # --- verify and detect ------------------------------------------------------------

    def verify(
        self,
        image_a: bytes,
        image_b: bytes | None = None,
        *,
        collection: str | None = None,
        person: str | None = None,
        threshold: float | None = None,
        pack: str | None = None,
        crop: bool = False,
    ) -> VerifyResult:
        """1:1: two photos, or one photo against a person's enrolled faces (their best face)."""
        started = time.perf_counter()
        check_search_params(1, threshold, "central", "fast")
        if (image_b is None) == (person is None):
            raise ValidationError(
                "give either a second image or a person (with its collection)", field="image_b"
            )
        if person is not None:
            if collection is None:
                raise ValidationError("a person is looked up in a collection: name it", field="collection")
            coll = self.store.collection_info(collection)
            pack_name = coll.pack
            target = self.store.get_person(coll.id, person)
            references = self.store.person_embeddings(target.id)
            if len(references) == 0:
                raise ValidationError("this person has no enrolled face", field="person")
            limit = (
                self.collection_setting(coll, "default_threshold") if threshold is None else float(threshold)
            )
        else:
            pack_name = pack or self.settings.default_pack
            limit = self.pack(pack_name).default_threshold if threshold is None else float(threshold)
        model = self.pack(pack_name)
        analysis_a = self._analyse(pack_name, image_a, crop=crop)
        a = analysis_a.faces[0]
        faces = [query_face(a)]
        timings = analysis_a.timings.to_dict()
        if image_b is not None:
            analysis_b = self._analyse(pack_name, image_b, crop=crop)
            b = analysis_b.faces[0]
            faces.append(query_face(b))
            references = b.embedding.reshape(1, -1)
            for stage, ms in analysis_b.timings.to_dict().items():
                timings[stage] = timings.get(stage, 0.0) + ms
        distance = float(np.min(np.linalg.norm(references - a.embedding, axis=1)))
        similarity = model.similarity(distance)
        return VerifyResult(
            similarity=round(similarity, 6),
            distance=round(distance, 6),
            match=similarity >= limit,
            threshold=limit,
            faces=tuple(faces),
            query_time_ms=round((time.perf_counter() - started) * 1000, 2),
            searched=len(references),
            timings=timings,
        )

    def detect(
        self,
        image: bytes,
        *,
        pack: str | None = None,
        min_face_size: int = 32,
        max_faces: int = 100,
        check_liveness: bool = False,
    ) -> tuple[list[QueryFace], dict[str, float]]:
        """Every face of a photo with box, landmarks, score and quality (none: empty list)."""
        from facesearch.errors import NoFaceDetected

        if not 8 <= min_face_size <= 4096:
            raise ValidationError("min_face_size must be from 8 to 4096 pixels", field="min_face_size")
        if not 1 <= max_faces <= 1000:
            raise ValidationError("max_faces must be from 1 to 1000", field="max_faces")
        self._require_liveness(self.pack(pack or self.settings.default_pack), check_liveness)
        try:
            analysis = self._analyse(
                pack or self.settings.default_pack,
                image,
                every_face=True,
                min_face_size=min_face_size,
                max_faces=max_faces,
                liveness=check_liveness,
            )
        except NoFaceDetected:
            return [], {}
        self._check_liveness(analysis, check_liveness, single=False)
        return [query_face(f) for f in analysis.faces], analysis.timings.to_dict()
