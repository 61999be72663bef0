"""The index follower: keeps the derived vector index current with SQL's change log.

SQL is the truth; the index records the last change-log entry it applied (``applied_seq``),
replays the log from there on start and after every write, and saves snapshots (on close and
every ``SNAPSHOT_EVERY`` changes) so a restart replays only the tail. It never re-embeds a photo.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facesearch.errors import IndexUnavailable
from facesearch.index import VectorIndex
from facesearch.storage import Change, Store
from facesearch.storage.records import (
    OP_ADD_FACE,
    OP_DROP_COLLECTION,
    OP_REMOVE_FACE,
    OP_REMOVE_PERSON,
    OP_SET_GROUPS,
)

log = logging.getLogger("facesearch.service")

SNAPSHOT_EVERY = 50_000  # changes applied between automatic index snapshots
#: Seconds after a face was removed from the index before a snapshot replaces the files that still
#: hold its vector (one snapshot for a burst of deletions).
ERASE_SNAPSHOT_DELAY_S = 30.0
ERASING_OPS = frozenset({OP_REMOVE_FACE, OP_REMOVE_PERSON, OP_DROP_COLLECTION})
REPLAY_BATCH = 10_000  # change-log entries read per query


class IndexFollower:
    """Applies the change log to ``index``; snapshots go to ``snapshot_dir`` (None: never saved)."""

    def __init__(self, store: Store, index: VectorIndex, snapshot_dir: Path | None) -> None:
        self.store = store
        self.index = index
        self.snapshot_dir = snapshot_dir
        self._lock = threading.Lock()
        self._last_snapshot_seq = index.applied_seq
        self._erase_timer: threading.Timer | None = None
        #: The pack a partition was last rebuilt for by a pack migration (seen by this process):
        #: a search holding its collection from before the switch finds out (searcher.py).
        self.partition_packs: dict[int, str] = {}
        self._closed = False
        #: A shared index: the cursor was last written by this process (which waits for its writes).
        self._cursor_mine = False
        #: Leave after_write's sync to the next search or an explicit sync (see after_write).
        self.defer_writes = False
        #: The data version at the start of the last complete sync (None: never synced).
        self._synced_version: int | None = None
        if index.applied_seq > store.last_seq():
            log.warning("index snapshot is ahead of the database: rebuilding the index from SQL")
            self._reset()

    def _reset(self) -> None:
        for partition in self.index.partitions():
            self.index.drop_partition(partition)
        self.index.applied_seq = 0
        self._synced_version = None

    def sync(self, *, fresh: bool = True) -> int:
        """Apply change-log entries the index has not seen yet; returns how many.

        ``fresh=False`` (a search's own sync): trust the data version the HTTP request read when
        it started (the index is then as current as the request's other reads) instead of
        reading it again.

        A shared index (Milvus: ``index.shared``) holds its cursor itself and is written by one
        process at a time: when the log is ahead of the cursor this process knows, it takes the
        database's index lock, re-reads the cursor (another process may have applied the
        entries), applies the rest in order, and waits until they are visible to its searches."""
        with self._lock:
            # Every change-log entry is written with a new data version: when the version is the
            # one of the last sync, there is nothing to read (one small query instead of the log's).
            version = self.store.data_version(fresh=fresh)
            if version == self._synced_version:
                return 0
            if getattr(self.index, "shared", False):
                applied = self._sync_shared()
            else:
                applied = self._replay()
                if self.index.applied_seq - self._last_snapshot_seq >= SNAPSHOT_EVERY:
                    self.save_snapshot()
            self._synced_version = version
        return applied

    def _erased(self) -> None:
        """A face left the index: the snapshot files on disk still hold its vector, so a new
        snapshot is saved within ERASE_SNAPSHOT_DELAY_S (in the background, once per burst)."""
        if self.snapshot_dir is None or self._closed or self._erase_timer is not None:
            return
        timer = threading.Timer(ERASE_SNAPSHOT_DELAY_S, self._snapshot_after_erase)
        timer.daemon = True
        self._erase_timer = timer
        timer.start()

    def _snapshot_after_erase(self) -> None:
        with self._lock:
            self._erase_timer = None
            if self._closed:
                return
            try:
                self.save_snapshot()
            except Exception:  # the next close or periodic snapshot tries again
                log.exception("could not save the index snapshot after a deletion")

    def after_write(self) -> None:
        """`sync` after a committed write: an index failure (its server down) is logged, not
        raised, since the write is durable and the index catches up at a later sync. With
        ``defer_writes`` (a batch command that does not search meanwhile: ``facesearch enroll``)
        nothing is done here: every search syncs first, and the command syncs once at its end."""
        if self.defer_writes:
            return
        try:
            self.sync()
        except IndexUnavailable as exc:
            log.warning("the index is behind the database until it is reachable again: %s", exc.message)

    def _replay(self) -> int:
        applied = 0
        while True:
            changes = self.store.changes_since(self.index.applied_seq, limit=REPLAY_BATCH)
            if not changes:
                return applied
            self._apply(changes)
            self.index.applied_seq = changes[-1].seq
            applied += len(changes)

    def _sync_shared(self) -> int:
        """A shared index (Milvus): its cursor is in the database, beside the log, so it is read at
        once; one process applies at a time (the database's index lock), then waits, outside the
        lock, until what it wrote is visible to its own searches."""
        index = self.index
        if not self.store.changes_since(index.applied_seq, limit=1):
            return 0
        name = index.cursor_name  # type: ignore[attr-defined]
        with self.store.index_lock():
            index.refresh()  # type: ignore[attr-defined]  # partitions another process added
            generation = index.generation  # type: ignore[attr-defined]
            cursor = self.store.index_cursor(name)
            if cursor is None or cursor[1] != generation:
                if cursor is not None:
                    log.warning("the shared index %s is new or was emptied: rebuilding it from SQL", name)
                self._reset()
                index.others_applied = True  # type: ignore[attr-defined]
            else:
                # Another process moved the cursor since this one last wrote it (and waited for
                # its writes): those writes may not be visible here yet.
                mine = self._cursor_mine and cursor[0] == index.applied_seq
                index.others_applied = not mine  # type: ignore[attr-defined]
                index.applied_seq = cursor[0]
            applied = self._replay()
            if applied or cursor is None or cursor[1] != generation:
                self.store.set_index_cursor(name, index.applied_seq, generation)
            self._cursor_mine = applied > 0
        if applied:
            index.barrier()  # type: ignore[attr-defined]  # read-your-writes
        return applied

    def _apply(self, changes: Sequence[Change]) -> None:
        """Apply log entries in order, adding runs of new faces to the index in bulk."""
        idx = self.index
        pending: dict[int, list[Change]] = {}
        # A shared index takes each new face's groups with the face (no look-up of the person).
        shared = bool(getattr(idx, "shared", False))

        def flush() -> None:
            for partition, adds in pending.items():
                vectors = np.stack([c.embedding for c in adds if c.embedding is not None])
                fids, pids = [c.face_id or 0 for c in adds], [c.person_id or 0 for c in adds]
                if shared:
                    groups = {c.person_id or 0: tuple(c.groups or ()) for c in adds}
                    idx.add(partition, fids, pids, vectors, groups=groups)  # type: ignore[call-arg]
                else:
                    idx.add(partition, fids, pids, vectors)
            pending.clear()

        if any(c.op in ERASING_OPS for c in changes):
            self._erased()
        for c in changes:
            if c.op == OP_ADD_FACE:
                if c.embedding is not None and c.face_id is not None and c.person_id is not None:
                    pending.setdefault(c.collection_id, []).append(c)
                    if not shared:
                        idx.set_person_groups(c.collection_id, c.person_id, c.groups or ())
                continue
            flush()
            if c.op == OP_REMOVE_FACE and c.face_id is not None:
                idx.remove_faces(c.collection_id, [c.face_id])
            elif c.op == OP_SET_GROUPS and c.person_id is not None:
                idx.set_person_groups(c.collection_id, c.person_id, c.groups or ())
            elif c.op == OP_REMOVE_PERSON and c.person_id is not None:
                idx.remove_person(c.collection_id, c.person_id)
            elif c.op == OP_DROP_COLLECTION:
                idx.drop_partition(c.collection_id)
                pack = (c.payload or {}).get("pack")
                if pack:
                    self.partition_packs[c.collection_id] = str(pack)
                else:
                    self.partition_packs.pop(c.collection_id, None)
        flush()

    def save_snapshot(self) -> None:
        """Write an index snapshot now (nothing without a snapshot folder)."""
        if self.snapshot_dir is None:
            return
        self.index.save(self.snapshot_dir)
        self._last_snapshot_seq = self.index.applied_seq

    def close(self) -> None:
        """Save a snapshot when anything was applied since the last one, then stop the index."""
        with self._lock:
            self._closed = True
            if self._erase_timer is not None:
                self._erase_timer.cancel()
                self._erase_timer = None
            if self.index.applied_seq != self._last_snapshot_seq:
                self.save_snapshot()
        self.index.close()
