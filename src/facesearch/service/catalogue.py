"""The catalogue: collections, persons, groups and faces, read and written under the rules.

Photos become faces in ``enrolment.py`` (creating a person with photos, adding a face); this
part owns everything else that is stored, and resolves a collection reference once per request
(``resolve``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from facesearch.domain import (
    COLLECTION_SETTINGS,
    Collection,
    Face,
    Group,
    Person,
    check_collection_name,
    check_collection_settings,
    check_kind,
)
from facesearch.errors import ValidationError
from facesearch.service.follower import IndexFollower
from facesearch.service.models import Models
from facesearch.storage import Store

#: A collection as callers name it (id or name), or already resolved for this request.
CollectionRef = str | Collection


class Catalogue:
    """Collections, persons, groups and faces (``default_pack``: for new collections)."""

    def __init__(self, store: Store, models: Models, follower: IndexFollower, default_pack: str) -> None:
        self.store = store
        self.models = models
        self.follower = follower
        self.default_pack = default_pack

    def resolve(self, ref: CollectionRef) -> Collection:
        """The collection of a reference (id or name), without counts; a Collection as it is."""
        return ref if isinstance(ref, Collection) else self.store.collection_info(ref)

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
        check_collection_name(name)
        check_kind(kind)
        pack_name = pack or self.default_pack
        self.models.pack(pack_name)  # unknown packs are refused here
        merged = {**COLLECTION_SETTINGS, **check_collection_settings(settings)}
        return self.store.create_collection(name, title, description, kind, pack_name, merged)

    def get_collection(self, ref: CollectionRef) -> Collection:
        """A collection by id or name, with person and face counts."""
        return self.store.get_collection(ref.pk if isinstance(ref, Collection) else ref)

    def list_collections(self) -> list[Collection]:
        """Every collection with its counts."""
        return self.store.list_collections()

    def update_collection(self, /, ref: CollectionRef, **fields: Any) -> Collection:
        """Edit name, title, description, kind or settings (the pack cannot change)."""
        allowed = {"title", "description", "kind", "settings", "name"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValidationError(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        if fields.get("name") is not None:
            check_collection_name(fields["name"])
        if fields.get("kind") is not None:
            check_kind(fields["kind"])
        if fields.get("settings") is not None:
            fields["settings"] = check_collection_settings(fields["settings"])
        coll = self.resolve(ref)
        return self.store.update_collection(coll.pk, **{k: v for k, v in fields.items() if v is not None})

    def delete_collection(self, ref: CollectionRef) -> None:
        """Delete a collection with every person, face and thumbnail in it."""
        self.store.delete_collection(self.resolve(ref).pk)
        self.follower.after_write()

    # --- persons and faces ----------------------------------------------------------

    def get_person(self, collection: CollectionRef, person: str) -> Person:
        """A person with their faces."""
        return self.store.get_person(self.resolve(collection).pk, person)

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
        """A page of persons and the cursor of the next page (None at the end; the store checks
        the page size)."""
        coll = self.resolve(collection)
        return self.store.list_persons(coll.pk, group, external_id, name_prefix, limit, cursor)

    def update_person(self, /, collection: CollectionRef, person: str, **fields: Any) -> Person:
        """Edit name, external id, metadata or groups."""
        result = self.store.update_person(self.resolve(collection).pk, person, **fields)
        self.follower.after_write()
        return result

    def delete_person(self, collection: CollectionRef, person: str) -> str:
        """Delete a person with every face, embedding and thumbnail."""
        deleted = self.store.delete_person(self.resolve(collection).pk, person)
        self.follower.after_write()
        return deleted

    def delete_face(self, collection: CollectionRef, face: str) -> None:
        """Remove one face (its embedding and thumbnail)."""
        self.store.delete_face(self.resolve(collection).pk, face)
        self.follower.after_write()

    def photo_enrolled(self, collection: CollectionRef, person: str, photo: bytes) -> bool:
        """Whether this very photo (same bytes) is already enrolled for ``person``."""
        digest = hashlib.sha256(photo).hexdigest()
        return self.store.find_face_by_hash(self.resolve(collection).pk, person, digest) is not None

    def face_image(self, face: str) -> tuple[Face, bytes]:
        """A face and its stored thumbnail (JPEG)."""
        return self.store.get_face(face), self.store.get_face_thumbnail(face)

    # --- groups -----------------------------------------------------------------------

    def create_group(self, collection: CollectionRef, name: str) -> Group:
        """Create a group in a collection."""
        return self.store.create_group(self.resolve(collection).pk, name)

    def list_groups(self, collection: CollectionRef) -> list[Group]:
        """Groups with their person counts (the implicit ``default`` first)."""
        return self.store.list_groups(self.resolve(collection).pk)

    def delete_group(self, collection: CollectionRef, group: str) -> None:
        """Delete a group; its persons stay, without that membership."""
        self.store.delete_group(self.resolve(collection).pk, group)
        self.follower.after_write()

    def add_member(self, collection: CollectionRef, group: str, person: str) -> Person:
        """Put a person in a group (created when missing)."""
        result = self.store.add_member(self.resolve(collection).pk, group, person)
        self.follower.after_write()
        return result

    def remove_member(self, collection: CollectionRef, group: str, person: str) -> Person:
        """Take a person out of a group."""
        result = self.store.remove_member(self.resolve(collection).pk, group, person)
        self.follower.after_write()
        return result

    def counts(self) -> dict[str, int]:
        """Collections, faces, negatives and remembered unknown faces held, for the health route."""
        return {
            "collections": len(self.store.list_collections()),
            "faces": self.follower.index.count(),
            "negatives": self.store.negative_count(),
            "unknown_faces": self.store.unknown_count(),
        }
