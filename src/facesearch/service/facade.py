"""FaceSearch: the service as one object, wiring its parts together. It knows nothing of HTTP.

The parts, each a plain object with its collaborators passed in:

- ``models.Models``: model packs by name, and the analyzer that turns photos into faces;
- ``follower.IndexFollower``: keeps the vector index current with SQL's change log;
- ``enrolment.Enroller``: the one place where photos become stored faces;
- ``catalogue.Catalogue``: collections, persons, groups and faces;
- ``searcher.Searcher``: identify, search, identify-all, verify and detect.

Every write returns only after its SQL transaction has committed; the index is then brought up
to date from the change log before the call returns, so a caller always finds what it has just
enrolled. Options are the frozen values of ``options.py``, given whole or as keywords.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facesearch.config import Settings
from facesearch.domain import (
    Collection,
    Face,
    Group,
    IdentifyAllResult,
    IdentifyResult,
    Person,
    QueryFace,
    VerifyResult,
)
from facesearch.index import VectorIndex, open_index
from facesearch.pipeline import ModelPack
from facesearch.pipeline.analyzer import Analyzer
from facesearch.pipeline.gate import DEFAULT_GATE, QualityGate
from facesearch.service.catalogue import Catalogue, CollectionRef
from facesearch.service.enrolment import Enroller
from facesearch.service.follower import IndexFollower
from facesearch.service.models import Models
from facesearch.service.options import (
    DetectOptions,
    EnrolOptions,
    IdentifyAllOptions,
    SearchOptions,
    VerifyOptions,
)
from facesearch.service.searcher import Searcher
from facesearch.storage import Store, open_store


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
        self.follower = IndexFollower(store, index, snapshot_dir)
        self.enroller = Enroller(store, self.models, gate, self.follower)
        self.catalogue = Catalogue(store, self.models, self.enroller, self.follower, settings.default_pack)
        self.searcher = Searcher(
            store, index, self.models, self.catalogue, self.enroller, self.follower, settings.default_pack
        )
        self.follower.sync()

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

    def close(self) -> None:
        """Save an index snapshot, stop the workers and release the database."""
        self.follower.close()
        self.models.close()
        self.store.close()

    def counts(self) -> dict[str, int]:
        """Collections and faces held, for the health route."""
        return self.catalogue.counts()

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
        return self.catalogue.create_collection(
            name, title=title, description=description, kind=kind, pack=pack, settings=settings
        )

    def get_collection(self, ref: CollectionRef) -> Collection:
        """A collection by id or name, with person and face counts."""
        return self.catalogue.get_collection(ref)

    def list_collections(self) -> list[Collection]:
        """Every collection with its counts."""
        return self.catalogue.list_collections()

    def update_collection(self, ref: CollectionRef, **fields: Any) -> Collection:
        """Edit name, title, description, kind or settings (the pack cannot change)."""
        return self.catalogue.update_collection(ref, **fields)

    def delete_collection(self, ref: CollectionRef) -> None:
        """Delete a collection with every person, face and thumbnail in it."""
        self.catalogue.delete_collection(ref)

    # --- persons, faces and groups ------------------------------------------------------

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
        return self.catalogue.create_person(
            collection,
            external_id=external_id,
            name=name,
            metadata=metadata,
            groups=groups,
            images=images,
            options=EnrolOptions.build(options, overrides),
        )

    def get_person(self, collection: CollectionRef, person: str) -> Person:
        """A person with their faces."""
        return self.catalogue.get_person(collection, person)

    def list_persons(
        self,
        collection: CollectionRef,
        *,
        group: str | None = None,
        external_id: str | None = None,
        name_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Person], str | None]:
        """A page of persons and the cursor of the next page (None at the end)."""
        return self.catalogue.list_persons(
            collection,
            group=group,
            external_id=external_id,
            name_prefix=name_prefix,
            limit=limit,
            cursor=cursor,
        )

    def update_person(self, collection: CollectionRef, person: str, **fields: Any) -> Person:
        """Edit name, external id, metadata or groups."""
        return self.catalogue.update_person(collection, person, **fields)

    def delete_person(self, collection: CollectionRef, person: str) -> None:
        """Delete a person with every face, embedding and thumbnail."""
        self.catalogue.delete_person(collection, person)

    def add_face(
        self,
        collection: CollectionRef,
        person: str,
        image: bytes,
        options: EnrolOptions | None = None,
        **overrides: Any,
    ) -> Face:
        """Enrol one more face of a person (``EnrolOptions``: ``face``, ``crop``, ``check_liveness``)."""
        return self.catalogue.add_face(collection, person, image, EnrolOptions.build(options, overrides))

    def delete_face(self, collection: CollectionRef, face: str) -> None:
        """Remove one face (its embedding and thumbnail)."""
        self.catalogue.delete_face(collection, face)

    def photo_enrolled(self, collection: CollectionRef, person: str, photo: bytes) -> bool:
        """Whether this very photo (same bytes) is already enrolled for ``person``."""
        return self.catalogue.photo_enrolled(collection, person, photo)

    def face_image(self, face: str) -> tuple[Face, bytes]:
        """A face and its stored thumbnail (JPEG)."""
        return self.catalogue.face_image(face)

    def create_group(self, collection: CollectionRef, name: str) -> Group:
        """Create a group in a collection."""
        return self.catalogue.create_group(collection, name)

    def list_groups(self, collection: CollectionRef) -> list[Group]:
        """Groups with their person counts (the implicit ``default`` first)."""
        return self.catalogue.list_groups(collection)

    def delete_group(self, collection: CollectionRef, group: str) -> None:
        """Delete a group; its persons stay, without that membership."""
        self.catalogue.delete_group(collection, group)

    def add_member(self, collection: CollectionRef, group: str, person: str) -> Person:
        """Put a person in a group (created when missing)."""
        return self.catalogue.add_member(collection, group, person)

    def remove_member(self, collection: CollectionRef, group: str, person: str) -> Person:
        """Take a person out of a group."""
        return self.catalogue.remove_member(collection, group, person)

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
    ) -> tuple[list[QueryFace], dict[str, float]]:
        """Every face of a photo with box, landmarks, score and quality (none: empty list)."""
        return self.searcher.detect(image, DetectOptions.build(options, overrides), pack=pack)
