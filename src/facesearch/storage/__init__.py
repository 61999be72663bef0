"""SQL storage: tables, migrations and the Store (see repository.py for its conventions)."""

from facesearch.domain import DEFAULT_GROUP
from facesearch.storage.db import create_engine_for, migrate
from facesearch.storage.records import ApiKeyRecord, Change, FaceBatch, NewFace, PersonFace
from facesearch.storage.repository import Store, open_store

__all__ = [
    "DEFAULT_GROUP",
    "ApiKeyRecord",
    "Change",
    "FaceBatch",
    "NewFace",
    "PersonFace",
    "Store",
    "create_engine_for",
    "migrate",
    "open_store",
]
