"""The searcher: identify (1:N), search over several collections, identify-all (N:N), verify (1:1)
and detect. It reads; the only writes it asks for (auto-enrol, enrol-if-unknown) go to enrolment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from facesearch.domain import (
    AmbiguousMatch,
    Collection,
    DetectResult,
    FaceObservation,
    FaceResult,
    IdentifyAllResult,
    IdentifyResult,
    Match,
    QueryFace,
    ThresholdRule,
    VerifyResult,
)
from facesearch.errors import NoFaceDetected, ValidationError
from facesearch.imaging import thumbnail_jpeg
from facesearch.index import Hit, VectorIndex
from facesearch.pipeline import AnalyseOptions, Analysis, ModelPack
from facesearch.pipeline.liveness import require_live
from facesearch.service.catalogue import Catalogue, CollectionRef
from facesearch.service.context import CURRENT_REQUEST_ID
from facesearch.service.enrolment import THUMBNAIL_SIDE, Enroller, stored_quality
from facesearch.service.follower import IndexFollower
from facesearch.service.models import Models
from facesearch.service.options import (
    DetectOptions,
    IdentifyAllOptions,
    MatchOptions,
    SearchOptions,
    VerifyOptions,
)
from facesearch.storage import Store
from facesearch.storage._unknowns import NewUnknown

#: The smallest false-match rate a match reports: the tables are checked down to 1e-5 and
#: extrapolated below, so a rate under 1e-7 is reported as 1e-7 ("at most").
FMR_FLOOR = 1e-7

#: "This face is not this person": a query face is never matched to a person when it is closer to
#: one of the person's negatives than to the person (their template or best face). Measured on the
#: LFW development set (bench/corrections.py, README "Corrections"): this rule kept 99.9-100% of a
#: corrected look-alike's further photos away from the person, and wrongly kept 0-0.1% of the
#: person's own photos away; a fixed radius around the negative caught no more and, at the
#: distance of a per-pair false-match rate of 1e-3, kept 12% of the person's own photos away.
#: Searches repeated, each asking for more candidates, when corrections kept matches out.
_VETO_ROUNDS = 3

SearchFn = Callable[[int], list[Hit]]


def query_face(face: FaceObservation) -> QueryFace:
    """What the caller is told about a face found in their photo."""
    d = face.detection
    return QueryFace(box=d.box, score=d.score, landmarks=d.landmarks, quality=face.quality)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class _PackChanged(Exception):
    """The collection moved to another pack between reading it and searching it."""


class Searcher:
    """Search operations over the index, with persons looked up in SQL in one query per search."""

    def __init__(
        self,
        store: Store,
        index: VectorIndex,
        models: Models,
        catalogue: Catalogue,
        enroller: Enroller,
        follower: IndexFollower,
        default_pack: str,
    ) -> None:
        self.store = store
        self.index = index
        self.models = models
        self.catalogue = catalogue
        self.enroller = enroller
        self.follower = follower
        self.default_pack = default_pack

    # --- the rules of a search ------------------------------------------------------

    def _same_pack(self, refs: Sequence[CollectionRef]) -> list[Collection]:
        if not refs:
            raise ValidationError("name at least one collection", field="collections")
        colls = [self.catalogue.resolve(r) for r in refs]
        if len({c.pack for c in colls}) > 1:
            raise ValidationError(
                "collections of different model packs cannot be searched together: "
                + ", ".join(f"{c.name} ({c.pack})" for c in colls),
                field="collections",
            )
        return colls

    @staticmethod
    def _require_calibration(pack: ModelPack, options: MatchOptions) -> None:
        """Refuse ``max_false_positive_rate`` before any work when the pack has no table."""
        if options.max_false_positive_rate is not None and pack.calibration is None:
            raise ValidationError(
                f"model pack {pack.name!r} has no calibration table, so max_false_positive_rate "
                "cannot be turned into a threshold: give threshold instead",
                field="max_false_positive_rate",
            )

    @staticmethod
    def _rule(coll: Collection, pack: ModelPack, options: MatchOptions) -> ThresholdRule:
        """The cut-off rule of a search: the request's threshold or rate, else the collection's
        ``default_threshold`` when it sets one, else its ``max_false_positive_rate`` (default
        0.01) when the pack is calibrated, else the pack's default threshold."""
        if options.threshold is not None:
            return ThresholdRule("threshold", float(options.threshold), "request")
        if options.max_false_positive_rate is not None:
            return ThresholdRule("max_false_positive_rate", float(options.max_false_positive_rate), "request")
        if coll.settings.get("default_threshold") is not None:
            return ThresholdRule("threshold", float(coll.settings["default_threshold"]), "collection")
        if pack.calibration is not None:
            rate = float(coll.setting("max_false_positive_rate"))
            return ThresholdRule("max_false_positive_rate", rate, "collection")
        return ThresholdRule("threshold", pack.default_threshold, "pack")

    @staticmethod
    def _threshold(pack: ModelPack, rule: ThresholdRule, gallery_size: int) -> tuple[float, float | None]:
        """(similarity threshold to report, largest distance to accept; None: no limit).

        A ``max_false_positive_rate`` is the chance that a stranger's photo matches anyone in a
        search over ``gallery_size`` enrolled faces; with comparisons taken as independent that
        allows a per-comparison false-match rate of 1 - (1 - rate)^(1/N), about rate / N, which the
        pack's calibration table turns into a distance. Past FMR 1e-6 the similarity reads 1.0 but
        the distance stays exact.
        """
        if rule.kind == "max_false_positive_rate" and pack.calibration is not None:
            n = max(1, gallery_size)
            table = pack.calibration
            return table.threshold_for_gallery(rule.value, n), table.distance_for_gallery(rule.value, n)
        limit = rule.value
        return limit, pack.distance_for_similarity(limit) if limit > 0 else None

    def _analyse(
        self, coll: Collection, image: bytes, options: MatchOptions, how: AnalyseOptions, *, single: bool
    ) -> tuple[ModelPack, Analysis]:
        """The photo's faces, after refusing what cannot be done (liveness, a rate without a table)
        before any work; then the index is brought up to date for the search that follows."""
        pack = self.models.pack(coll.pack)
        self.models.require_liveness(coll.pack, options.check_liveness)
        self._require_calibration(pack, options)
        analysis = self.models.analyse(coll.pack, image, how)
        if options.check_liveness:
            require_live(analysis, single=single)
        self.follower.sync(fresh=False)  # as current as the rest of this request (storage/cache.py)
        if self.follower.partition_packs.get(coll.pk, coll.pack) != coll.pack:
            raise _PackChanged  # a pack migration switched the collection meanwhile
        return pack, analysis

    def _matches(
        self,
        hits: list[Hit],
        pack: ModelPack,
        names: dict[int, str],
        searched: int,
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
                person = replace(person, metadata={})
            fmr = max(pack.calibration.fmr(h.distance), FMR_FLOOR) if pack.calibration is not None else None
            out.append(
                Match(
                    rank=len(out) + 1,
                    similarity=round(pack.similarity(h.distance), 6),
                    distance=round(h.distance, 6),
                    person=person,
                    face_id=face.id,
                    collection=names.get(h.partition, ""),
                    thumbnail=thumbs.get(h.face_id),
                    false_match_rate=None if fmr is None else float(f"{fmr:.3g}"),
                    expected_false_matches=None if fmr is None else float(f"{fmr * searched:.3g}"),
                )
            )
        return tuple(out)

    # --- corrections: negatives, different people, unknown faces -------------------------

    def _vetted(self, query: np.ndarray, k: int, hits: list[Hit], run: SearchFn) -> tuple[list[Hit], int]:
        """``hits`` without the persons this face was recorded as not being (their negatives),
        topped up by searching again for more candidates; and how many persons were kept out."""
        if not hits:
            return hits, 0
        negatives = self.store.negatives_of({h.person_id for h in hits})
        if not negatives:
            return hits, 0
        barred: set[int] = set()
        asked = k
        for round_ in range(_VETO_ROUNDS):
            best: dict[int, float] = {}
            for h in hits:
                best[h.person_id] = min(best.get(h.person_id, np.inf), h.distance)
            for pid, own in best.items():
                negs = negatives.get(pid)
                if negs is None or pid in barred:
                    continue
                nearest = float(np.min(np.linalg.norm(negs - query, axis=1)))
                if nearest < own:
                    barred.add(pid)
            kept = [h for h in hits if h.person_id not in barred]
            if not barred or len(kept) >= k or len(hits) < asked or round_ == _VETO_ROUNDS - 1:
                return kept[:k], len(barred)
            asked = asked * 2 + len(barred)
            hits = run(asked)
            fresh = {h.person_id for h in hits} - set(negatives) - barred
            if fresh:
                negatives.update(self.store.negatives_of(fresh))
        return [h for h in hits if h.person_id not in barred][:k], len(barred)  # pragma: no cover

    @staticmethod
    def _person_distance(query: np.ndarray, faces: np.ndarray, template: bool) -> float:
        """A person's distance to a query face as the index scores it: their template (the mean
        of their faces, renormalised for unit embeddings) with ``template`` and 2+ faces, else
        their nearest face."""
        if template and len(faces) >= 2:
            mean = faces.astype(np.float64).mean(axis=0)
            if bool(np.all(np.abs(np.linalg.norm(faces, axis=1) - 1.0) <= 4e-3)):
                mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
            return float(np.linalg.norm(mean - query))
        return float(np.min(np.linalg.norm(faces - query, axis=1)))

    def _ambiguous(
        self,
        pack: ModelPack,
        per_face: Sequence[tuple[np.ndarray, Sequence[Hit]]],
        max_distance: float | None,
        *,
        templates: bool,
        groups: Sequence[str] | None,
    ) -> list[tuple[AmbiguousMatch, ...]]:
        """For each face: the persons of a different-people pair that both pass the cut-off, one
        of them among the matches (the other may be past top_k, so it is scored here as the index
        would score it, its group filter and negatives applied). One query when nobody matched
        has such a record."""
        empty: list[tuple[AmbiguousMatch, ...]] = [() for _ in per_face]
        matched = {h.person_id for _, hits in per_face for h in hits}
        pairs = self.store.distinct_pairs_of(matched) if matched else set()
        if not pairs:
            return empty
        involved = {p for pair in pairs for p in pair}
        faces = self.store.embeddings_by_person(involved)
        negatives = self.store.negatives_of(involved)
        persons = self.store.get_persons_by_ids(involved)
        wanted = set(groups) if groups else None
        out: list[tuple[AmbiguousMatch, ...]] = []
        for query, hits in per_face:
            here = {h.person_id: h.distance for h in hits}

            def passes(pid: int, here: dict[int, float] = here, query: np.ndarray = query) -> float | None:
                if pid in here:
                    return here[pid]
                person, own = persons.get(pid), faces.get(pid)
                if person is None or own is None or (wanted is not None and not wanted & set(person.groups)):
                    return None
                d = self._person_distance(query, own, templates)
                if max_distance is not None and d > max_distance:
                    return None
                negs = negatives.get(pid)
                if negs is not None and float(np.min(np.linalg.norm(negs - query, axis=1))) < d:
                    return None  # this face was recorded as not being them
                return d

            flagged: dict[int, float] = {}
            for a, b in pairs:
                if a not in here and b not in here:
                    continue
                da, db = passes(a), passes(b)
                if da is not None and db is not None:
                    flagged[a], flagged[b] = da, db
            out.append(
                tuple(
                    AmbiguousMatch(persons[p], round(pack.similarity(d), 6), round(d, 6))
                    for p, d in sorted(flagged.items(), key=lambda kv: kv[1])
                    if p in persons
                )
            )
        return out

    def _remember(self, coll: Collection, faces: Sequence[FaceObservation], source: str) -> list[str]:
        """Keep faces nobody matched, when the collection remembers unknown faces (else nothing)."""
        if not faces or not coll.setting("remember_unknown"):
            return []
        rid = CURRENT_REQUEST_ID.get()
        items = [
            NewUnknown(
                pack=f.pack,
                embedding=f.embedding,
                box=f.detection.box,
                quality=stored_quality(f),
                thumbnail=thumbnail_jpeg(f.chip, max_side=THUMBNAIL_SIDE),
                source=source,
                request_id=rid,
            )
            for f in faces
        ]
        return self.store.add_unknowns(coll.pk, items, int(coll.setting("unknown_retention_days")))

    # --- identify and search ----------------------------------------------------------

    def search(
        self, collections: Sequence[CollectionRef], image: bytes, options: SearchOptions
    ) -> IdentifyResult:
        """See ``_search``; run again, on the collections read afresh, when a pack migration
        switched one of them while this search was under way."""
        try:
            return self._search(collections, image, options)
        except _PackChanged:
            return self._search(
                [c.id if isinstance(c, Collection) else c for c in collections], image, options
            )

    def _search(
        self, collections: Sequence[CollectionRef], image: bytes, options: SearchOptions
    ) -> IdentifyResult:
        """Identify over one or more collections of the same model pack; matches name their collection.

        ``threshold`` is a similarity; ``max_false_positive_rate`` instead asks for the threshold
        that keeps a stranger's chance of matching anyone at that rate, for the number of faces in
        the searched collections (every enrolled face counts, also when deduplicating persons or
        filtering by group: the conservative count). The result's ``threshold`` is the one used.
        """
        started = time.perf_counter()
        colls = self._same_pack(collections)
        if options.enrols and len(colls) > 1:
            raise ValidationError("enrolment from a search needs exactly one collection", field="collections")
        first = colls[0]
        how = AnalyseOptions(choice=options.face, crop=options.crop, liveness=options.check_liveness)
        pack, analysis = self._analyse(first, image, options, how, single=True)
        found = analysis.faces[0]
        rule = self._rule(first, pack, options)
        names = {c.pk: c.name for c in colls}
        vetoed = 0
        ambiguous: tuple[AmbiguousMatch, ...] = ()

        def find() -> tuple[tuple[Match, ...], int, float, float]:
            nonlocal vetoed, ambiguous
            t0 = time.perf_counter()
            searched = sum(self.index.count(c.pk) for c in colls)
            limit, max_distance = self._threshold(pack, rule, searched)

            def run(k: int) -> list[Hit]:
                return self.index.search(
                    [c.pk for c in colls],
                    found.embedding,
                    k,
                    groups=list(options.groups) if options.groups else None,
                    unique_persons=options.deduplicate,
                    max_distance=max_distance,
                    exact=options.search_mode == "accurate",
                    templates=first.setting("person_score") == "template",
                )

            hits, barred = self._vetted(found.embedding, options.top_k, run(options.top_k), run)
            search_ms = (time.perf_counter() - t0) * 1000
            vetoed = barred
            ambiguous = self._ambiguous(
                pack,
                [(found.embedding, hits)],
                max_distance,
                templates=first.setting("person_score") == "template",
                groups=options.groups,
            )[0]
            matches = self._matches(
                hits,
                pack,
                names,
                searched,
                return_metadata=options.return_metadata,
                return_thumbnails=options.return_thumbnails,
            )
            return matches, searched, limit, search_ms

        matches, searched, limit, search_ms = find()
        auto_face_id = created_id = None
        auto = first.setting("auto_enroll") if options.auto_enroll is None else options.auto_enroll
        if matches and auto:
            auto_face_id = self.enroller.auto_enroll(first, found, image, matches[0])
        elif not matches and options.enroll_if_unknown:
            # One unknown face sent several times at once must make one person: the search is
            # repeated under the collection's enrolment lock (this process's, then the database's,
            # which other servers and the CLI share), after the index caught up.
            with self.enroller.unknown_lock(first.pk), self.store.collection_lock(first.pk):
                self.follower.sync()
                matches, searched, limit, search_ms = find()
                if not matches:
                    created_id = self.enroller.enroll_unknown(first, found, image, options)
        unknown_id = None
        if not matches and created_id is None and len(colls) == 1:
            unknown_id = next(iter(self._remember(first, [found], "identify")), None)
        return IdentifyResult(
            matches=matches,
            face=query_face(found),
            threshold=limit,
            searched=searched,
            query_time_ms=_ms_since(started),
            timings={**analysis.timings.to_dict(), "search_ms": round(search_ms, 3)},
            auto_enrolled_face_id=auto_face_id,
            created_person_id=created_id,
            threshold_rule=rule,
            ambiguous=ambiguous,
            vetoed=vetoed,
            unknown_id=unknown_id,
        )

    # --- identify-all -----------------------------------------------------------------

    def identify_all(
        self, collection: CollectionRef, image: bytes, options: IdentifyAllOptions
    ) -> IdentifyAllResult:
        """See ``_identify_all``; run again on the collection read afresh after a pack switch."""
        try:
            return self._identify_all(collection, image, options)
        except _PackChanged:
            ref = collection.id if isinstance(collection, Collection) else collection
            return self._identify_all(ref, image, options)

    def _identify_all(
        self, collection: CollectionRef, image: bytes, options: IdentifyAllOptions
    ) -> IdentifyAllResult:
        """Every face of a photo with its matches (N:N), and the faces nobody matched.

        ``max_false_positive_rate`` applies to each face's search, as in ``search``.
        """
        started = time.perf_counter()
        coll = self.catalogue.resolve(collection)
        how = AnalyseOptions(
            every_face=True,
            min_face_size=options.min_face_size,
            max_faces=options.max_faces,
            crop_output=(options.output_size, options.output_aspect),
            liveness=options.check_liveness,
        )
        pack, analysis = self._analyse(coll, image, options, how, single=False)
        searched = self.index.count(coll.pk)
        rule = self._rule(coll, pack, options)
        limit, max_distance = self._threshold(pack, rule, searched)
        t0 = time.perf_counter()
        all_hits = self.index.search_batch(
            [coll.pk],
            np.stack([f.embedding for f in analysis.faces]),
            options.top_k,
            groups=list(options.groups) if options.groups else None,
            unique_persons=True,
            max_distance=max_distance,
            exact=options.search_mode == "accurate",
            templates=coll.setting("person_score") == "template",
        )
        vetted: list[tuple[list[Hit], int]] = []
        for f, hits in zip(analysis.faces, all_hits, strict=True):

            def run(k: int, q: np.ndarray = f.embedding) -> list[Hit]:
                return self.index.search(
                    [coll.pk],
                    q,
                    k,
                    groups=list(options.groups) if options.groups else None,
                    unique_persons=True,
                    max_distance=max_distance,
                    exact=options.search_mode == "accurate",
                    templates=coll.setting("person_score") == "template",
                )

            vetted.append(self._vetted(f.embedding, options.top_k, list(hits), run))
        search_ms = (time.perf_counter() - t0) * 1000
        ambiguous = self._ambiguous(
            pack,
            [(f.embedding, hits) for f, (hits, _) in zip(analysis.faces, vetted, strict=True)],
            max_distance,
            templates=coll.setting("person_score") == "template",
            groups=options.groups,
        )
        recognised: list[FaceResult] = []
        unknown: list[tuple[FaceObservation, FaceResult]] = []
        for f, crop, (hits, barred), pair in zip(
            analysis.faces, analysis.crops, vetted, ambiguous, strict=True
        ):
            matches = self._matches(
                hits,
                pack,
                {coll.pk: coll.name},
                searched,
                return_metadata=options.return_metadata,
                return_thumbnails=False,
            )
            result = FaceResult(query_face(f), crop, matches, ambiguous=pair, vetoed=barred)
            if matches:
                recognised.append(result)
            else:
                unknown.append((f, result))
        remembered = self._remember(coll, [f for f, _ in unknown], "identify_all")
        unrecognised = [
            replace(r, unknown_id=remembered[i]) if i < len(remembered) else r
            for i, (_, r) in enumerate(unknown)
        ]
        return IdentifyAllResult(
            faces=tuple(recognised),
            unrecognized=tuple(unrecognised),
            threshold=limit,
            searched=searched,
            query_time_ms=_ms_since(started),
            timings={**analysis.timings.to_dict(), "search_ms": round(search_ms, 3)},
            threshold_rule=rule,
            smallest_face_size=analysis.smallest_face,
        )

    # --- verify and detect ------------------------------------------------------------

    def verify(
        self,
        image_a: bytes,
        image_b: bytes | None,
        options: VerifyOptions,
        *,
        collection: CollectionRef | None = None,
        person: str | None = None,
        pack: str | None = None,
    ) -> VerifyResult:
        """1:1: two photos, or one photo against a person's enrolled faces (their best face)."""
        started = time.perf_counter()
        if (image_b is None) == (person is None):
            raise ValidationError(
                "give either a second image or a person (with its collection)", field="image_b"
            )
        if person is not None:
            if collection is None:
                raise ValidationError("a person is looked up in a collection: name it", field="collection")
            coll = self.catalogue.resolve(collection)
            pack_name = coll.pack
            references = self.store.person_embeddings(self.store.get_person(coll.pk, person).id)
            if len(references) == 0:
                raise ValidationError("this person has no enrolled face", field="person")
            setting = coll.setting("default_threshold")
        else:
            pack_name = pack or self.default_pack
            setting = None
        model = self.models.pack(pack_name)
        default = model.default_threshold if setting is None else float(setting)
        limit = default if options.threshold is None else options.threshold
        how = AnalyseOptions(crop=options.crop)
        analysis_a = self.models.analyse(pack_name, image_a, how)
        a = analysis_a.faces[0]
        faces = [query_face(a)]
        timings = analysis_a.timings.to_dict()
        if image_b is not None:
            analysis_b = self.models.analyse(pack_name, image_b, how)
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
            query_time_ms=_ms_since(started),
            searched=len(references),
            timings=timings,
        )

    def detect(self, image: bytes, options: DetectOptions, *, pack: str | None = None) -> DetectResult:
        """Every face of a photo with box, landmarks, score and quality (none: no faces)."""
        pack_name = pack or self.default_pack
        self.models.require_liveness(pack_name, options.check_liveness)
        try:
            analysis = self.models.analyse(
                pack_name,
                image,
                AnalyseOptions(
                    every_face=True,
                    min_face_size=options.min_face_size,
                    max_faces=options.max_faces,
                    liveness=options.check_liveness,
                ),
            )
        except NoFaceDetected as exc:
            return DetectResult((), {}, exc.details.get("smallest_face_size"))
        if options.check_liveness:
            require_live(analysis, single=False)
        return DetectResult(
            tuple(query_face(f) for f in analysis.faces), analysis.timings.to_dict(), analysis.smallest_face
        )
