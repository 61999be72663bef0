"""How many cores the photo being analysed may use, set per request.

The server runs one photo per worker process on one core, which is what keeps both cores busy
when several requests are in flight. With a single request in flight the other core would sit
idle, so the analyzer hands that photo ``cores=2`` and the pack's parts that can use it do:
the ONNX networks run with two intra-op threads, and the retina pack's two embedding networks
run at once, one per core (timed in one process: 10.9 -> 6.5 ms for the pair, RetinaFace on a
480-px crop 9.3 -> 6.8 ms; two worker pools over the same photos: 43.0 -> 35.9 ms a photo). The
value lives in a context variable of the thread analysing the photo; threads started by the
parts themselves see the default, one core.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_cores: ContextVar[int] = ContextVar("facesearch_cores", default=1)


def cores() -> int:
    """The cores the current photo may use (1 unless an analyzer said otherwise)."""
    return _cores.get()


@contextmanager
def using(n: int) -> Iterator[None]:
    """Analyse with ``n`` cores (at least 1) inside the block."""
    token = _cores.set(max(1, int(n)))
    try:
        yield
    finally:
        _cores.reset(token)
