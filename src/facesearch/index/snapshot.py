"""Snapshot files: a crash in the middle of `save` leaves the previous snapshot readable.

Layout of a snapshot directory::

    CURRENT                 {"format": 1, "generation": "gen-..."}  (replaced atomically)
    gen-<seq>-<uuid>/       one complete generation
        meta.json           backend, applied_seq, per partition: dim, groups; CRC-32 of every file
        p<partition>.npy    face_ids, person_ids (int64) and vectors (float32) of each partition
        ...                 backend files (e.g. the HNSW graph)

A save writes a fresh generation directory, fsyncs it, then points CURRENT at it with
`os.replace` and removes older generations. Readers only follow CURRENT and check the CRCs
before handing any file to a native library (a damaged HNSW graph could otherwise crash).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.index._store import PartitionStore
from facesearch.index.base import as_groups

FORMAT = 1
CURRENT = "CURRENT"


class SnapshotError(ValueError):
    """A snapshot is missing, incomplete or inconsistent."""


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:  # some filesystems refuse fsync on directories
        pass


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def exists(directory: Path) -> bool:
    """True if the directory holds a snapshot pointer (it may still turn out to be corrupt)."""
    return (Path(directory) / CURRENT).is_file()


def write(
    directory: Path,
    *,
    backend: str,
    applied_seq: int,
    parts: dict[int, PartitionStore],
    save_extra: Callable[[Path], dict[str, Any]],
) -> None:
    """Write a new generation and switch CURRENT to it."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"gen-{applied_seq}-{uuid.uuid4().hex[:12]}"
    gen = directory / name
    gen.mkdir()
    meta_parts: dict[str, Any] = {}
    for part, store in parts.items():
        for field, arr in (
            ("face_ids", store.face_ids),
            ("person_ids", store.person_ids),
            ("vectors", store.vectors),
        ):
            path = gen / f"p{part}.{field}.npy"
            np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
            _fsync_file(path)
        meta_parts[str(part)] = {
            "dim": store.dim,
            "n": store.n,
            "groups": {str(p): sorted(g) for p, g in store.groups.items()},
        }
    extra = save_extra(gen)
    files: dict[str, int] = {}
    for path in sorted(gen.iterdir()):
        _fsync_file(path)
        files[path.name] = _crc(path)
    meta = {
        "format": FORMAT,
        "backend": backend,
        "applied_seq": int(applied_seq),
        "partitions": meta_parts,
        "extra": extra,
        "files": files,
    }
    (gen / "meta.json").write_text(json.dumps(meta))
    _fsync_file(gen / "meta.json")
    _fsync_dir(gen)
    tmp = directory / f"{CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "generation": name}))
    _fsync_file(tmp)
    os.replace(tmp, directory / CURRENT)
    _fsync_dir(directory)
    for old in directory.iterdir():
        if old.name != name and old.name.startswith("gen-") and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        elif old.name.startswith(f"{CURRENT}.") and old.name.endswith(".tmp"):
            old.unlink(missing_ok=True)


def read(directory: Path) -> tuple[Path, dict[str, Any], dict[int, PartitionStore]]:
    """Load the current generation: (its directory, meta.json, partitions). Raises on corruption."""
    try:
        pointer = json.loads((directory / CURRENT).read_text())
        if pointer.get("format") != FORMAT:
            raise SnapshotError(f"unknown snapshot format {pointer.get('format')!r}")
        gen = directory / str(pointer["generation"])
        meta = json.loads((gen / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise SnapshotError("meta.json format mismatch")
        for name, crc in meta["files"].items():
            if _crc(gen / name) != int(crc):
                raise SnapshotError(f"checksum mismatch in {gen / name}")
        parts: dict[int, PartitionStore] = {}
        for key, info in meta["partitions"].items():
            part = int(key)
            parts[part] = _read_partition(gen, part, info)
        int(meta["applied_seq"])
    except SnapshotError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"unreadable snapshot in {directory}: {exc}") from exc
    return gen, meta, parts


def _read_partition(gen: Path, part: int, info: dict[str, Any]) -> PartitionStore:
    def load(field: str) -> np.ndarray[Any, Any]:
        return np.asarray(np.load(gen / f"p{part}.{field}.npy", allow_pickle=False))

    dim = info["dim"]
    n = int(info["n"])
    store = PartitionStore(int(dim) if dim is not None else None)
    fids, pids, vecs = load("face_ids"), load("person_ids"), load("vectors")
    if fids.shape != (n,) or pids.shape != (n,) or vecs.shape[0] != n or vecs.ndim != 2:
        raise SnapshotError(f"partition {part}: array shapes do not match n={n}")
    if n:
        if dim is None or vecs.shape[1] != dim or vecs.dtype != np.float32:
            raise SnapshotError(f"partition {part}: vectors do not match dim {dim}")
        if fids.dtype != np.int64 or pids.dtype != np.int64 or len(np.unique(fids)) != n:
            raise SnapshotError(f"partition {part}: bad face ids")
        store = PartitionStore.from_arrays(fids, pids, vecs)
    for person, names in info["groups"].items():
        store.set_groups(int(person), as_groups(str(g) for g in names))
    return store
