"""Upgrading a collection's model pack while it serves.

``start_migration`` records a migration; a background thread of the service (``MigrationWorker``; the
command line runs the same loop in the foreground) embeds every stored face again with the new
pack from its sealed source (collection setting ``keep_source``) into the shadow table
``face_vectors``, a batch at a time, and the collection's negatives from their thumbnails (the
aligned face, embedded as a tight crop). Identify keeps using the old pack and embeddings
meanwhile. Faces enrolled during the migration are picked up by the next batch (they have
sources too); deleted ones take their shadow rows with them. When every face has its new
embedding, one transaction switches the collection (``Store.switch_migration``) and the index
rebuilds the partition from SQL. Faces that cannot be embedded again (no face found in the
source) are listed in the migration's ``failed`` and block the switch, unless the migration was
started with ``drop_unmigratable``. The job is state in SQL: a restarted server resumes it where
it stopped; ``cancel_migration`` stops it and drops the shadow.

Thresholds carry over: a similarity is the pack's calibrated score, defined from the
false-match rate of its calibration table, so a ``default_threshold`` (or a
``max_false_positive_rate``) means the same rate of strangers under the new pack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facesearch.errors import FaceSearchError, ValidationError
from facesearch.pipeline import AnalyseOptions
from facesearch.service.catalogue import Catalogue, CollectionRef
from facesearch.service.follower import IndexFollower
from facesearch.service.models import Models
from facesearch.service.sources import SourceSeal
from facesearch.storage import Store
from facesearch.storage._migrations import DONE, RUNNING, MigrationRecord

log = logging.getLogger(__name__)

BATCH = 16


@dataclass(frozen=True)
class MigrationStatus:
    """A migration with its progress: ``rate`` faces per second since it started, ``eta_s``."""

    record: MigrationRecord
    rate: float | None
    eta_s: float | None


def status_of(record: MigrationRecord) -> MigrationStatus:
    elapsed = (record.updated_at - record.created_at).total_seconds()
    rate = record.done / elapsed if elapsed > 0 and record.done else None
    left = max(0, record.total - record.done - len(record.failed))
    eta = left / rate if rate and record.state == RUNNING else (0.0 if record.state == DONE else None)
    return MigrationStatus(
        record, None if rate is None else round(rate, 2), None if eta is None else round(eta, 1)
    )


class Migrations:
    """Start, follow, run and cancel pack migrations (module docstring)."""

    def __init__(
        self,
        store: Store,
        models: Models,
        follower: IndexFollower,
        catalogue: Catalogue,
        seal: SourceSeal | None,
    ) -> None:
        self.store = store
        self.models = models
        self.follower = follower
        self.catalogue = catalogue
        self.seal = seal
        self.wake = threading.Event()

    def start_migration(
        self, collection: CollectionRef, pack: str, *, drop_unmigratable: bool = False
    ) -> MigrationStatus:
        """Record a migration of the collection to ``pack`` (the worker picks it up)."""
        coll = self.catalogue.resolve(collection)
        self.models.pack(pack)  # an unknown or missing pack is refused here
        if self.seal is None and not drop_unmigratable:
            raise ValidationError(
                "this server has no FACESEARCH_SOURCE_KEY: stored face sources cannot be opened", field="pack"
            )
        record = self.store.create_migration(coll.pk, pack, drop_failed=drop_unmigratable)
        self.wake.set()
        return status_of(record)

    def migration_status(self, collection: CollectionRef, migration: str) -> MigrationStatus:
        return status_of(self.store.get_migration(self.catalogue.resolve(collection).pk, migration))

    def list_migrations(self, collection: CollectionRef) -> list[MigrationStatus]:
        return [status_of(r) for r in self.store.list_migrations(self.catalogue.resolve(collection).pk)]

    def cancel_migration(self, collection: CollectionRef, migration: str) -> MigrationStatus:
        return status_of(self.store.cancel_migration(self.catalogue.resolve(collection).pk, migration))

    # --- running --------------------------------------------------------------------

    def step(self, migration: str, pack: str) -> bool:
        """Embed one batch of faces (or the negatives, or switch): True while work remains."""
        state, faces = self.store.faces_to_migrate(migration, BATCH)
        if state != RUNNING:
            return False
        if faces:
            vectors: list[tuple[int, npt.NDArray[np.float32]]] = []
            failed: dict[str, str] = {}
            for f in faces:
                try:
                    if f.source is None or self.seal is None:
                        raise ValidationError("no stored source")
                    photo = self.seal.open(f.source)
                    found = self.models.analyse(pack, photo, AnalyseOptions())
                    vectors.append((f.pk, found.faces[0].embedding))
                except FaceSearchError as exc:
                    failed[f.id] = f"{exc.code}: {exc.message}"
            self.store.save_migrated(migration, vectors, failed)
            return True
        negatives = self.store.negatives_to_migrate(migration)
        if negatives:
            done: dict[str, npt.NDArray[np.float32] | None] = {}
            for uid, thumb in negatives:
                try:
                    if thumb is None:
                        raise ValidationError("no thumbnail")
                    done[uid] = self.models.analyse(pack, thumb, AnalyseOptions(crop=True)).faces[0].embedding
                except FaceSearchError:
                    done[uid] = None
            self.store.save_migrated_negatives(migration, done)
            return True
        switched = self.store.switch_migration(migration)
        if switched is None:
            return True  # faces came in meanwhile
        if switched.state == DONE:
            self.follower.after_write()
            log.info("collection %s now uses pack %s (%s)", switched.collection_id, pack, switched.result)
        return False

    def run(
        self,
        migration: str,
        *,
        progress: Callable[[MigrationStatus], None] | None = None,
        stop: threading.Event | None = None,
    ) -> MigrationStatus:
        """Run a migration in this thread until it is done, blocked, cancelled or ``stop`` is set."""
        record = next(r for r in self.store.list_migrations() if r.id == migration)
        while not (stop is not None and stop.is_set()):
            more = self.step(migration, record.to_pack)
            if progress is not None:
                progress(status_of(self.store.get_migration(record.collection_id, migration)))
            if not more:
                break
        return status_of(self.store.get_migration(record.collection_id, migration))


class MigrationWorker:
    """The service's background thread running every running migration, a batch at a time."""

    def __init__(self, migrations: Migrations) -> None:
        self.migrations = migrations
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="facesearch-migrations", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                for record in self.migrations.store.list_migrations(running=True):
                    if self._stop.is_set():
                        return
                    busy = self.migrations.step(record.id, record.to_pack) or busy
            except Exception:  # a database or index hiccup: try again shortly
                log.exception("pack migration step failed")
                time.sleep(1.0)
            if not busy:
                self.migrations.wake.wait(5.0)
                self.migrations.wake.clear()

    def close(self) -> None:
        self._stop.set()
        self.migrations.wake.set()
        self._thread.join(timeout=30)
