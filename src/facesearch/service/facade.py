"""FaceSearch: the service as one object, wiring its parts together. It knows nothing of HTTP.

The parts, each a plain object with its collaborators passed in:

- ``models.Models``: model packs by name, and the analyzer that turns photos into faces;
- ``follower.IndexFollower``: keeps the vector index current with SQL's change log;
- ``enrolment.Enroller``: the one place where photos become stored faces;
- ``catalogue.Catalogue``: collections, persons, groups and faces;
- ``searcher.Searcher``: identify, search, identify-all, verify and detect;
- ``corrections.Corrections``: negatives, different people, merge, split and unknown faces.

Every write returns only after its SQL transaction has committed; the index is then brought up
to date from the change log before the call returns, so a caller always finds what it has just
enrolled. Options are the frozen values of ``options.py``, given whole or as keywords.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from facesearch.config import Settings
from facesearch.domain import (
    Collection,
    DetectResult,
    Face,
    IdentifyAllResult,
    IdentifyResult,
    Person,
    VerifyResult,
)
from facesearch.errors import FaceSearchError
from facesearch.index import VectorIndex, open_index
from facesearch.pipeline import ModelPack
from facesearch.pipeline.analyzer import Analyzer
from facesearch.pipeline.gate import DEFAULT_GATE, QualityGate
from facesearch.service.catalogue import Catalogue, CollectionRef
from facesearch.service.corrections import Corrections
from facesearch.service.enrolment import Enroller
from facesearch.service.follower import IndexFollower
from facesearch.service.migrations import Migrations, MigrationWorker
from facesearch.service.models import Models
from facesearch.service.options import (
    DetectOptions,
    EnrolOptions,
    IdentifyAllOptions,
    SearchOptions,
    VerifyOptions,
)
from facesearch.service.searcher import Searcher
from facesearch.service.sources import SourceSeal
from facesearch.storage import NewFace, PersonFace, Store, open_store

P = ParamSpec("P")
R = TypeVar("R")


class forward(Generic[P, R]):  # noqa: N801 - used like a decorator, lower case reads better
    """A facade method that is the method of one of its parts (same signature and docstring).

    ``get_person = forward("catalogue", Catalogue.get_person)`` makes ``fs.get_person(...)``
    call ``fs.catalogue.get_person(...)``: the signature is written once, in the part.
    """

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.part = part
        self.method = method
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Callable[P, R]:
        if obj is None:
            return self.method  # type: ignore[return-value]  # for help() and the docs
        bound: Callable[P, R] = getattr(getattr(obj, self.part), self.name)
        return bound


class FaceSearch:
    """Collections, persons, groups and faces, and 1:N / N:N / 1:1 search over them.

    Built from ``settings`` (the SQL store, the index and its snapshots in ``data_dir``); any
    part may be given instead: ``store``, ``index``, ``analyzer`` (default: in this process),
    ``packs`` (ready-made model packs by name) and the enrolment quality ``gate``.
    """

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
        self.settings = settings = settings or Settings()
        if store is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = open_store(settings.resolved_database_url)
        snapshot_dir = None
        if index is None:
            snapshot_dir = settings.data_dir / "index"
            index = open_index(settings.index_url, snapshot_dir)
        self.store = store
        self.index = index
        self.models = Models(
            settings.pack_config(),
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            packs=packs,
            analyzer=analyzer,
        )
        #: The pack of new collections and of photo-only calls (detect, verify): ``default_pack``
        #: with "auto" resolved (the most accurate installed pack).
        self.default_pack = self.models.resolve(settings.default_pack)
        self.follower = IndexFollower(store, index, snapshot_dir)
        key = settings.source_key.get_secret_value() if settings.source_key is not None else None
        self.seal = SourceSeal(key) if key else None
        self.enroller = Enroller(store, self.models, gate, self.follower, self.seal)
        self.catalogue = Catalogue(store, self.models, self.follower, self.default_pack)
        self.searcher = Searcher(
            store, index, self.models, self.catalogue, self.enroller, self.follower, self.default_pack
        )
        self.corrections = Corrections(store, self.models, self.follower, self.catalogue)
        self.migrations = Migrations(store, self.models, self.follower, self.catalogue, self.seal)
        self._worker: MigrationWorker | None = None
        self.follower.sync()
        self.corrections.purge_all_unknowns()

    # --- plumbing -----------------------------------------------------------------

    def pack(self, name: str) -> ModelPack:
        """The model pack of that name (models load on first use)."""
        return self.models.pack(name)

    def sync(self) -> int:
        """Apply change-log entries the index has not seen yet; returns how many."""
        return self.follower.sync()

    def collection(self, ref: CollectionRef) -> Collection:
        """A collection by id or name, read once (no counts): pass it on to the other calls."""
        return self.catalogue.resolve(ref)

    def start_background(self) -> None:
        """Run pack migrations in a background thread (the server does; the command line runs a
        migration in the foreground instead)."""
        if self._worker is None:
            self._worker = MigrationWorker(self.migrations)

    def close(self) -> None:
        """Save an index snapshot, stop the workers and release the database."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self.follower.close()
        self.models.close()
        self.store.close()

    # --- collections, persons, faces and groups: the catalogue's own methods -------------

    create_collection = forward("catalogue", Catalogue.create_collection)
    get_collection = forward("catalogue", Catalogue.get_collection)
    list_collections = forward("catalogue", Catalogue.list_collections)
    update_collection = forward("catalogue", Catalogue.update_collection)
    delete_collection = forward("catalogue", Catalogue.delete_collection)
    get_person = forward("catalogue", Catalogue.get_person)
    list_persons = forward("catalogue", Catalogue.list_persons)
    update_person = forward("catalogue", Catalogue.update_person)
    delete_person = forward("catalogue", Catalogue.delete_person)
    delete_face = forward("catalogue", Catalogue.delete_face)
    photo_enrolled = forward("catalogue", Catalogue.photo_enrolled)
    face_image = forward("catalogue", Catalogue.face_image)
    create_group = forward("catalogue", Catalogue.create_group)
    list_groups = forward("catalogue", Catalogue.list_groups)
    delete_group = forward("catalogue", Catalogue.delete_group)
    add_member = forward("catalogue", Catalogue.add_member)
    remove_member = forward("catalogue", Catalogue.remove_member)
    counts = forward("catalogue", Catalogue.counts)

    # --- corrections and unknown faces (corrections.py) ------------------------------------

    add_negative = forward("corrections", Corrections.add_negative)
    list_negatives = forward("corrections", Corrections.list_negatives)
    delete_negative = forward("corrections", Corrections.delete_negative)
    negative_image = forward("corrections", Corrections.negative_image)
    set_different = forward("corrections", Corrections.set_different)
    unset_different = forward("corrections", Corrections.unset_different)
    list_different = forward("corrections", Corrections.list_different)
    merge_persons = forward("corrections", Corrections.merge_persons)
    split_person = forward("corrections", Corrections.split_person)
    unknown_clusters = forward("corrections", Corrections.unknown_clusters)
    name_unknowns = forward("corrections", Corrections.name_unknowns)
    list_unknowns = forward("corrections", Corrections.list_unknowns)
    forget_unknowns = forward("corrections", Corrections.forget_unknowns)
    unknown_image = forward("corrections", Corrections.unknown_image)

    # --- pack migrations (migrations.py) ----------------------------------------------------

    start_migration = forward("migrations", Migrations.start_migration)
    migration_status = forward("migrations", Migrations.migration_status)
    list_migrations = forward("migrations", Migrations.list_migrations)
    cancel_migration = forward("migrations", Migrations.cancel_migration)

    # --- enrolment (enrolment.py), options given whole or as keywords ---------------------

    def create_person(
        self,
        collection: CollectionRef,
        *,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Sequence[str] = (),
        images: Sequence[bytes] = (),
        options: EnrolOptions | None = None,
        **overrides: Any,
    ) -> Person:
        """Create a person, enrolling the central face of each image in the same transaction.

        Every image is analysed and quality-checked before anything is written: one refused
        photo refuses the whole request (details name the image's position). Options
        (``EnrolOptions``: ``crop``, ``check_liveness``) whole or as keywords.
        """
        return self.enroller.create_person(
            self.catalogue.resolve(collection),
            external_id=external_id,
            name=name,
            metadata=metadata,
            groups=groups,
            images=images,
            options=EnrolOptions.build(options, overrides),
        )

    def add_face(
        self,
        collection: CollectionRef,
        person: str,
        image: bytes,
        options: EnrolOptions | None = None,
        **overrides: Any,
    ) -> Face:
        """Enrol one more face of a person (``EnrolOptions``: ``face``, ``crop``, ``check_liveness``)."""
        coll = self.catalogue.resolve(collection)
        return self.enroller.add_face(coll, person, image, EnrolOptions.build(options, overrides))

    def analyse_photo(
        self, collection: CollectionRef, image: bytes, options: EnrolOptions | None = None, **overrides: Any
    ) -> NewFace:
        """The face one photo would enrol, analysed and checked as ``add_face`` checks it, nothing
        written (a refused photo raises why); for ``enroll_faces``."""
        coll = self.catalogue.resolve(collection)
        return self.enroller.face_from_photo(coll, image, EnrolOptions.build(options, overrides))

    def enroll_faces(
        self, collection: CollectionRef, items: Sequence[PersonFace]
    ) -> list[Face | FaceSearchError | None]:
        """Bulk enrolment (``facesearch enroll``): analysed faces of persons by external id, written
        in one transaction, a person created at its first face; per item the stored face, its
        refusal (face limit, bad data), or None when the person already has that very photo."""
        return self.enroller.enroll_batch(self.catalogue.resolve(collection), items)

    def photo_hashes(self, collection: CollectionRef, external_id: str) -> set[str] | None:
        """SHA-256 of every photo enrolled for the person with this external id (None: no such person)."""
        return self.store.photo_hashes(self.catalogue.resolve(collection).pk, external_id)

    # --- search -----------------------------------------------------------------------

    def identify(
        self, collection: CollectionRef, image: bytes, options: SearchOptions | None = None, **overrides: Any
    ) -> IdentifyResult:
        """Who is this? The best ``top_k`` matches in one collection (1:N); ``SearchOptions``."""
        return self.searcher.search([collection], image, SearchOptions.build(options, overrides))

    def search(
        self,
        collections: Sequence[CollectionRef],
        image: bytes,
        options: SearchOptions | None = None,
        **overrides: Any,
    ) -> IdentifyResult:
        """Identify over several collections of one model pack; each match names its collection."""
        return self.searcher.search(collections, image, SearchOptions.build(options, overrides))

    def identify_all(
        self,
        collection: CollectionRef,
        image: bytes,
        options: IdentifyAllOptions | None = None,
        **overrides: Any,
    ) -> IdentifyAllResult:
        """Every face of a photo with its matches (N:N), and the faces nobody matched."""
        return self.searcher.identify_all(collection, image, IdentifyAllOptions.build(options, overrides))

    def verify(
        self,
        image_a: bytes,
        image_b: bytes | None = None,
        options: VerifyOptions | None = None,
        *,
        collection: CollectionRef | None = None,
        person: str | None = None,
        pack: str | None = None,
        **overrides: Any,
    ) -> VerifyResult:
        """1:1: two photos, or one photo against a person's enrolled faces (their best face)."""
        return self.searcher.verify(
            image_a,
            image_b,
            VerifyOptions.build(options, overrides),
            collection=collection,
            person=person,
            pack=pack,
        )

    def detect(
        self, image: bytes, options: DetectOptions | None = None, *, pack: str | None = None, **overrides: Any
    ) -> DetectResult:
        """Every face of a photo with box, landmarks, score and quality (none: no faces), and
        the smallest face size the scan could find in it."""
        return self.searcher.detect(image, DetectOptions.build(options, overrides), pack=pack)
