"""What the request path reads, cached per server process and checked with one query a request.

An identify used to read SQL eight times (the API key, the collection, the change log, the
matched persons' negatives and different-people records, the persons, their groups, the faces):
17 statements with their transactions, about a third of the main process's CPU per request
(``bench/identify.py --profile``). Every write transaction raises the ``data_version`` row
(``StoreBase._write``), in whichever process or server it runs; a request reads that number
once (``data_version``), and a cached value loaded at the same version is what SQL would answer.
So one small query replaces the reads, the index follower skips its change-log query when the
version has not moved, and a revoked key, a renamed person or a new negative is seen by the next
request on every server, as before.

Caching is on only inside an HTTP request (``request_scope``, set by the API's middleware); the
CLI, the background workers and direct Store users read SQL as before. Within a request, a write
by this process drops the cache and the request's version, so the request reads its own writes.
Values handed out are immutable or fresh copies.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Per HTTP request: {"v": the data version read for it}; None outside a request (no caching).
_SCOPE: ContextVar[dict[str, int] | None] = ContextVar("facesearch_read_scope", default=None)

#: Entries kept (least recently used dropped first): persons, faces, keys, collections, corrections.
CACHE_ENTRIES = 50_000


@contextmanager
def request_scope() -> Iterator[None]:
    """Cache reads inside the block, checked against the data version once (the HTTP request)."""
    token = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(token)


def enter_request_scope() -> None:
    """Start a request's scope in the current context (an ASGI middleware, whose context is the
    request's own: the endpoint's worker threads run in copies of it)."""
    _SCOPE.set({})


def scope() -> dict[str, int] | None:
    return _SCOPE.get()


class ReadCache:
    """Values keyed by (kind, key), each stored with the data version it was read at."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple[str, Hashable], tuple[int, Any]] = OrderedDict()

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def get(self, version: int, kind: str, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            found = self._values.get((kind, key))
            if found is None or found[0] != version:
                return False, None
            self._values.move_to_end((kind, key))
            return True, found[1]

    def put(self, version: int, kind: str, key: Hashable, value: Any) -> None:
        with self._lock:
            self._values[(kind, key)] = (version, value)
            self._values.move_to_end((kind, key))
            while len(self._values) > self._entries:
                self._values.popitem(last=False)

    def one(self, version: int | None, kind: str, key: Hashable, load: Callable[[], V]) -> V:
        """The value of ``key``: cached at ``version``, else loaded (None: no caching)."""
        if version is None:
            return load()
        hit, value = self.get(version, kind, key)
        if hit:
            return value  # type: ignore[no-any-return]
        value = load()
        self.put(version, kind, key, value)
        return value

    def many(
        self, version: int | None, kind: str, keys: Iterable[K], load: Callable[[list[K]], dict[K, V]]
    ) -> dict[K, V]:
        """Values of several keys; those not cached at ``version`` loaded in one ``load`` call.
        Keys ``load`` leaves out (no such row) are remembered as absent and left out."""
        wanted = list(dict.fromkeys(keys))
        if version is None:
            return load(wanted)
        out: dict[K, V] = {}
        absent: list[K] = []
        for key in wanted:
            hit, value = self.get(version, kind, key)
            if not hit:
                absent.append(key)
            elif value is not _ABSENT:
                out[key] = value
        if absent:
            loaded = load(absent)
            for key in absent:
                value = loaded.get(key, _ABSENT)
                self.put(version, kind, key, value)
                if value is not _ABSENT:
                    out[key] = value
        return out


_ABSENT: Any = object()
