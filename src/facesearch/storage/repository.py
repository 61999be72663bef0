"""The SQL store: the one door to the durable truth.

Conventions, for every public method of ``Store``:

- One call is one transaction, committed before the method returns (reads run in a
  plain transaction, writes in ``BEGIN IMMEDIATE`` on SQLite). The one exception is
  ``verify_api_key``, which may add a second short write to record ``last_used_at``.
- Returned objects are the frozen domain dataclasses (``Collection``, ``Person``,
  ``Group``, ``Face``) whose ``id`` fields are the public uids (``col_``, ``per_``,
  ``grp_``, ``fac_``), or the store's own ``Change``, ``FaceBatch`` and ``ApiKeyRecord``.
- Integer primary keys never reach the API; the vector index uses them. They come from
  ``collection_pk``, ``person_pk``, ``face_pk``, the change log and ``all_faces_for_index``,
  and go back in through ``get_persons_by_ids``, ``get_faces_by_ids`` and
  ``get_thumbnails_by_ids``.
- Wherever a collection is asked for (``collection_id``), a ``Ref`` is accepted: the int
  primary key, the uid or the name. Persons and faces: the int primary key or the uid;
  groups: the uid or the name. Something missing raises ``NotFound`` with details naming
  it; taken names and external ids raise ``Conflict``; bad values ``ValidationError``.
- A person in no group is in the implicit group ``default``: ``Person.groups``, change
  log payloads and ``all_person_groups`` report ``("default",)`` for such a person.
- Every change the index must follow appends a change-log entry in the same transaction:
  ``add_face``, ``remove_face``, ``set_groups`` (payload ``{"groups": [...]}``),
  ``remove_person`` (payload ``{"face_ids": [...]}``) and ``drop_collection``; corrections log
  ``add_negative`` / ``remove_negative`` (the index has nothing to do for them). Merging and
  splitting persons re-own faces in place (same face ids), logged as ``remove_face`` + ``add_face``.
"""

from __future__ import annotations

from sqlalchemy import Engine

from facesearch.storage._archive import ArchiveMixin
from facesearch.storage._audit import AuditMixin
from facesearch.storage._base import Ref
from facesearch.storage._collections import CollectionsMixin, hash_key
from facesearch.storage._corrections import CorrectionsMixin
from facesearch.storage._faces import FacesMixin
from facesearch.storage._migrations import MigrationsMixin
from facesearch.storage._persons import MAX_LIMIT, PersonsMixin
from facesearch.storage._unknowns import UnknownsMixin
from facesearch.storage.db import create_engine_for, migrate

__all__ = ["MAX_LIMIT", "Ref", "Store", "hash_key", "open_store"]


class Store(
    CollectionsMixin,
    PersonsMixin,
    FacesMixin,
    CorrectionsMixin,
    UnknownsMixin,
    AuditMixin,
    ArchiveMixin,
    MigrationsMixin,
):
    """Collections, persons, groups, faces, the change log and API keys, in SQL."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)

    def close(self) -> None:
        """Release the engine's pooled connections."""
        self.engine.dispose()


def open_store(url: str) -> Store:
    """Engine for ``url``, schema migrated to head, wrapped in a Store."""
    engine = create_engine_for(url)
    migrate(engine)
    return Store(engine)
