"""Corrections that stick, and the people the service does not know yet.

- Negatives: "this face is not this person", from a photo or from a stored face. The searcher
  never matches a query face to a person when it is closer to one of that person's negatives than
  to the person (``searcher.py``), whatever the threshold; auto-enrolment adds faces only to a
  person the search matched, so it never adds such a face either.
- Different people: a pair of persons recorded as different; when both match one query face,
  the result lists both in ``ambiguous`` instead of silently picking one.
- Merge and split: one transaction each in the store; the index follows the change log.
- Unknown faces: with the collection setting ``remember_unknown``, faces that searches matched
  to nobody are kept for ``unknown_retention_days`` (default 30; older ones are purged on every
  write and every listing) and clustered on demand (``clusters.py``); a cluster or any chosen
  unknown faces become a new person, or more faces of an existing one, in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facesearch.domain import Collection, Negative, Person, UnknownCluster, UnknownFace
from facesearch.errors import NotFound, ValidationError
from facesearch.imaging import thumbnail_jpeg
from facesearch.pipeline import AnalyseOptions
from facesearch.service.catalogue import Catalogue, CollectionRef
from facesearch.service.clusters import CLUSTER_FMR, cluster_labels
from facesearch.service.enrolment import THUMBNAIL_SIDE
from facesearch.service.follower import IndexFollower
from facesearch.service.models import Models
from facesearch.storage import Store

#: Unknown faces clustered in one listing (the newest), by default and at most.
CLUSTER_FACES_DEFAULT = 2000
CLUSTER_FACES_MAX = 5000
#: Sample faces shown per cluster.
CLUSTER_SAMPLES = 6


class Corrections:
    """Negatives, different-people pairs, merge, split and unknown faces (module docstring)."""

    def __init__(self, store: Store, models: Models, follower: IndexFollower, catalogue: Catalogue) -> None:
        self.store = store
        self.models = models
        self.follower = follower
        self.catalogue = catalogue

    # --- negatives ----------------------------------------------------------------

    def add_negative(
        self,
        collection: CollectionRef,
        person: str,
        *,
        image: bytes | None = None,
        face: str | None = None,
    ) -> tuple[Negative, str | None]:
        """Record "this face is not ``person``": the face nearest the centre of ``image``, or the
        stored face ``face`` (a face of this person, e.g. a wrong auto-enrolment, is removed from
        them at the same time; a face of someone else stays theirs). Returns the negative and
        the id of the face removed from the person, if any."""
        if (image is None) == (face is None):
            raise ValidationError("give either a photo or a face id", field="face_id")
        coll = self.catalogue.resolve(collection)
        self.store.get_person(coll.pk, person)  # NotFound before any photo work
        if image is not None:
            found = self.models.analyse(coll.pack, image, AnalyseOptions()).faces[0]
            negative, removed = self.store.add_negative(
                coll.pk,
                person,
                coll.pack,
                found.embedding,
                thumbnail_jpeg(found.chip, max_side=THUMBNAIL_SIDE),
            )
        else:
            assert face is not None
            stored = self.store.get_face(face)
            if stored.collection_id != coll.id:
                raise NotFound(f"face {face!r} not found", details={"face": face, "collection": coll.name})
            embedding = self.store.face_embedding(face)
            thumb = self.store.get_thumbnails_by_ids([self.store.face_pk(face)])
            negative, removed = self.store.add_negative(
                coll.pk, person, coll.pack, embedding, next(iter(thumb.values()), None), from_face=face
            )
        self.follower.after_write()
        return negative, removed

    def list_negatives(self, collection: CollectionRef, person: str) -> list[Negative]:
        """A person's negatives, oldest first."""
        return self.store.list_negatives(self.catalogue.resolve(collection).pk, person)

    def delete_negative(self, collection: CollectionRef, person: str, negative: str) -> None:
        """Remove one negative: the person may be matched to such faces again."""
        self.store.delete_negative(self.catalogue.resolve(collection).pk, person, negative)
        self.follower.after_write()

    def negative_image(self, collection: CollectionRef, person: str, negative: str) -> bytes:
        """The thumbnail (JPEG) kept with a negative."""
        return self.store.negative_thumbnail(self.catalogue.resolve(collection).pk, person, negative)

    # --- different people ---------------------------------------------------------

    def set_different(self, collection: CollectionRef, person: str, other: str) -> list[Person]:
        """Record that two persons are different people; the persons now recorded as different
        from ``person``."""
        coll = self.catalogue.resolve(collection)
        self.store.set_distinct(coll.pk, person, other)
        return self.store.list_distinct(coll.pk, person)

    def unset_different(self, collection: CollectionRef, person: str, other: str) -> None:
        """Forget that two persons are different people."""
        self.store.set_distinct(self.catalogue.resolve(collection).pk, person, other, distinct=False)

    def list_different(self, collection: CollectionRef, person: str) -> list[Person]:
        """The persons recorded as different from ``person``."""
        return self.store.list_distinct(self.catalogue.resolve(collection).pk, person)

    # --- merge and split ----------------------------------------------------------

    def merge_persons(
        self, collection: CollectionRef, person: str, source: str, *, metadata: str = "target"
    ) -> Person:
        """Merge ``source`` into ``person``: faces, groups, negatives and different-people records
        move over in one transaction and ``source``'s id answers NOT_FOUND with ``merged_into``.
        ``metadata``: "target" (``person``'s wins, the default), "source" or "union"."""
        coll = self.catalogue.resolve(collection)
        merged = self.store.merge_persons(
            coll.pk, person, source, metadata=metadata, max_faces=int(coll.setting("max_faces_per_person"))
        )
        self.follower.after_write()
        return merged

    def split_person(
        self,
        collection: CollectionRef,
        person: str,
        faces: Sequence[str],
        *,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Sequence[str] = (),
    ) -> Person:
        """Move the chosen faces of ``person`` to a new person (created with these fields)."""
        coll = self.catalogue.resolve(collection)
        new = self.store.split_person(
            coll.pk, person, list(faces), external_id=external_id, name=name, metadata=metadata, groups=groups
        )
        self.follower.after_write()
        return new

    # --- unknown faces ------------------------------------------------------------

    def _retention(self, coll: Collection) -> int:
        return int(coll.setting("unknown_retention_days"))

    def unknown_clusters(
        self, collection: CollectionRef, *, limit: int = CLUSTER_FACES_DEFAULT, min_size: int = 1
    ) -> tuple[list[UnknownCluster], int]:
        """Likely-same-person clusters of the newest ``limit`` remembered unknown faces, largest
        first (ties: most recently seen first), with at least ``min_size`` faces; and how many
        unknown faces the collection holds."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= CLUSTER_FACES_MAX:
            raise ValidationError(f"limit must be from 1 to {CLUSTER_FACES_MAX}", field="limit")
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ValidationError("min_size must be a positive integer", field="min_size")
        coll = self.catalogue.resolve(collection)
        self.store.purge_unknowns(coll.pk, self._retention(coll))
        held = self.store.unknown_count(coll.pk)
        found = self.store.unknowns_for_clustering(coll.pk, limit)
        if not found.ids:
            return [], held
        pack = self.models.pack(coll.pack)
        if pack.calibration is not None:
            edge = float(pack.calibration.distance_for_fmr(CLUSTER_FMR))
        else:
            edge = float(pack.distance_for_similarity(pack.default_threshold))
        labels = cluster_labels(found.vectors, edge)
        out: list[UnknownCluster] = []
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)  # newest first, as read
            if len(rows) < min_size:
                continue
            seen = [found.seen[i] for i in rows]
            out.append(
                UnknownCluster(
                    id=found.ids[rows[-1]],
                    size=len(rows),
                    first_seen=min(seen),
                    last_seen=max(seen),
                    members=tuple(found.ids[i] for i in rows),
                    samples=tuple(found.ids[i] for i in rows[:CLUSTER_SAMPLES]),
                )
            )
        out.sort(key=lambda c: (-c.size, -c.last_seen.timestamp(), c.id))
        return out, held

    def _cluster_members(self, coll: Collection, cluster: str) -> tuple[str, ...]:
        clusters, _ = self.unknown_clusters(coll, limit=CLUSTER_FACES_MAX)
        for c in clusters:
            if cluster in c.members:
                return c.members
        raise NotFound(f"unknown face {cluster!r} not found", details={"cluster": cluster})

    def name_unknowns(
        self,
        collection: CollectionRef,
        *,
        unknowns: Sequence[str] = (),
        cluster: str | None = None,
        person: str | None = None,
        external_id: str | None = None,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        groups: Sequence[str] = (),
    ) -> tuple[Person, int]:
        """Turn unknown faces into faces of a person: the faces named in ``unknowns``, or every
        face of the cluster holding ``cluster`` (a cluster id, or any of its faces); into the
        existing ``person``, else into a new person with these fields. The largest faces are
        kept when there are more than the person has room for; every face named is forgotten
        as unknown. Returns the person and how many faces it got."""
        if (cluster is None) == (not unknowns):
            raise ValidationError("give either a cluster or a list of unknown faces", field="unknowns")
        coll = self.catalogue.resolve(collection)
        members = self._cluster_members(coll, cluster) if cluster is not None else tuple(unknowns)
        result = self.store.name_unknowns(
            coll.pk,
            list(members),
            person=person,
            external_id=external_id,
            name=name,
            metadata=metadata,
            groups=groups,
            max_faces=int(coll.setting("max_faces_per_person")),
        )
        self.follower.after_write()
        return result

    def list_unknowns(
        self, collection: CollectionRef, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[UnknownFace], str | None]:
        """A page of remembered unknown faces, newest first (with time, source and request id)."""
        coll = self.catalogue.resolve(collection)
        self.store.purge_unknowns(coll.pk, self._retention(coll))
        return self.store.list_unknowns(coll.pk, limit, cursor)

    def forget_unknowns(self, collection: CollectionRef, unknowns: Sequence[str]) -> int:
        """Forget these unknown faces now (before their retention ends); how many there were."""
        if not unknowns:
            raise ValidationError("name at least one unknown face", field="unknowns")
        return self.store.delete_unknowns(self.catalogue.resolve(collection).pk, list(unknowns))

    def unknown_image(self, collection: CollectionRef, unknown: str) -> bytes:
        """The thumbnail (JPEG) of a remembered unknown face."""
        return self.store.unknown_thumbnail(self.catalogue.resolve(collection).pk, unknown)

    def purge_all_unknowns(self) -> int:
        """Forget every collection's unknown faces past their retention (run at start)."""
        return sum(
            self.store.purge_unknowns(c.pk, int(c.setting("unknown_retention_days")))
            for c in self.store.list_collections()
        )
