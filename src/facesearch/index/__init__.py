"""Vector index: the `VectorIndex` Protocol and its in-process backends, chosen by URL.

`memory://` and `hnsw://` give `HnswIndex` (HNSW for `fast`, exact scan for `accurate`),
`exact://` gives `ExactIndex`, `milvus://host:port` gives `MilvusIndex` (a Milvus server or
cluster, shared by every API process; ``pip install 'facesearch[milvus]'``). HNSW parameters may
be passed as a query string, e.g.
`hnsw://?m=32&ef_construction=200&ef_search=224&small_partition=2000&project=1&shards=0`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from facesearch.index import snapshot
from facesearch.index.base import Hit, VectorIndex
from facesearch.index.exact import ExactIndex
from facesearch.index.hnsw import HnswIndex

__all__ = ["ExactIndex", "Hit", "HnswIndex", "VectorIndex", "open_index"]

log = logging.getLogger(__name__)

_HNSW_PARAMS = {"m", "ef_construction", "ef_search", "small_partition", "project", "shards"}


def open_index(url: str, snapshot_dir: Path | None = None) -> VectorIndex:
    """Create the index named by `url`, restored from `snapshot_dir` when it holds a snapshot.

    A corrupt or unreadable snapshot is logged and ignored: the index starts empty with
    `applied_seq == 0`, so the caller replays the whole change log.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    params = dict(parse_qsl(parts.query, keep_blank_values=False))
    if scheme in ("memory", "hnsw"):
        unknown = set(params) - _HNSW_PARAMS
        if unknown:
            raise ValueError(f"unknown index URL parameters: {sorted(unknown)}")
        try:
            kwargs = {k: int(v) for k, v in params.items()}
        except ValueError as exc:
            raise ValueError(f"index URL parameters must be integers: {url!r}") from exc
        hnsw = HnswIndex(**kwargs)
        if snapshot_dir is not None and snapshot.exists(snapshot_dir):
            try:
                hnsw = HnswIndex.load(snapshot_dir, **kwargs)
            except Exception:
                log.warning("index snapshot in %s is unreadable; starting empty", snapshot_dir, exc_info=True)
        return hnsw
    if scheme == "exact":
        if params:
            raise ValueError(f"exact:// takes no parameters: {url!r}")
        exact = ExactIndex()
        if snapshot_dir is not None and snapshot.exists(snapshot_dir):
            try:
                exact = ExactIndex.load(snapshot_dir)
            except Exception:
                log.warning("index snapshot in %s is unreadable; starting empty", snapshot_dir, exc_info=True)
        return exact
    if scheme == "milvus":
        from facesearch.index.milvus import open_milvus

        return open_milvus(url)
    raise ValueError(
        f"unknown index URL scheme {parts.scheme!r} in {url!r} (memory://, hnsw://, exact://, milvus://)"
    )
