"""Backup and restore of a collection: a portable archive, streamed both ways.

An archive is a tar file (gzip-compressed when its name ends in ``.gz``) of JSON Lines members,
``manifest.json`` first::

    manifest.json     format, facesearch version, time, the collection (settings included), the
                      model pack's identity (name, embedding size, calibration table SHA-256),
                      counts, and the SHA-256 and size of every other member
    groups.jsonl  persons.jsonl  faces.jsonl  negatives.jsonl  pairs.jsonl  redirects.jsonl
                      one row per line; embeddings and thumbnails as base64

Export reads the collection in one snapshot (``Store.export_rows``) while the server keeps
serving, writes the members to a temporary folder beside the output (hashing as it goes, never
holding the archive in memory), then the tar, which replaces the output file atomically. Import
reads the tar sequentially and writes everything in one transaction (``Store.import_rows``); a
member whose checksum or size differs from the manifest's stops it, and nothing is kept.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from facesearch import __version__
from facesearch.domain import Collection
from facesearch.errors import ValidationError
from facesearch.storage import Store

FORMAT = 1
MEMBERS = {
    "group": "groups.jsonl",
    "person": "persons.jsonl",
    "face": "faces.jsonl",
    "negative": "negatives.jsonl",
    "distinct": "pairs.jsonl",
    "redirect": "redirects.jsonl",
}
_BINARY = ("embedding", "thumbnail", "source")
#: Progress: (what, done, total) -> None; total is None when not known.
Progress = Callable[[str, int, int | None], None]


def pack_identity(pack: str, dim: int | None) -> dict[str, Any]:
    """What an archive's embeddings are comparable with: the pack's name, the embedding size and
    the SHA-256 of the pack's calibration table as this installation has it (None without one)."""
    from facesearch.pipeline.calibration import load_calibration

    table = load_calibration(pack)
    digest = hashlib.sha256(table.to_json().encode()).hexdigest() if table is not None else None
    return {"name": pack, "dim": dim, "calibration_sha256": digest}


def _encode(row: dict[str, Any]) -> bytes:
    out = {k: (base64.b64encode(v).decode() if k in _BINARY and v is not None else v) for k, v in row.items()}
    return (json.dumps(out, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _decode(line: bytes) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError:
        raise ValidationError("an archive line is not JSON", field="archive") from None
    if not isinstance(row, dict):
        raise ValidationError("an archive line is not a JSON object", field="archive")
    for k in _BINARY:
        if row.get(k) is not None:
            try:
                row[k] = base64.b64decode(row[k], validate=True)
            except (ValueError, TypeError):
                raise ValidationError(f"an archive row's {k} is not base64", field="archive") from None
    return row


def export_collection(
    store: Store, collection: str, out: Path, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Write the archive of a collection to ``out``; returns its manifest."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".facesearch-export-", dir=out.parent) as tmp:
        files: dict[str, Any] = {}
        handles: dict[str, IO[bytes]] = {}
        hashes = {name: hashlib.sha256() for name in MEMBERS.values()}
        sizes = dict.fromkeys(MEMBERS.values(), 0)
        counts = dict.fromkeys(MEMBERS, 0)
        meta: dict[str, Any] = {}
        dim: int | None = None
        sources = 0
        try:
            for name in MEMBERS.values():
                handles[name] = open(Path(tmp) / name, "wb")  # noqa: SIM115 - closed below
            for kind, row in store.export_rows(collection):
                if kind == "collection":
                    meta = row
                    continue
                member = MEMBERS[kind]
                data = _encode(row)
                handles[member].write(data)
                hashes[member].update(data)
                sizes[member] += len(data)
                counts[kind] += 1
                if kind == "face":
                    dim = dim or int(row["dim"])
                    sources += row.get("source") is not None
                    if progress is not None:
                        progress("export", counts["face"], meta["counts"]["faces"])
        finally:
            for h in handles.values():
                h.close()
        for member in MEMBERS.values():
            files[member] = {"sha256": hashes[member].hexdigest(), "bytes": sizes[member]}
        manifest = {
            "format": FORMAT,
            "facesearch": __version__,
            "created_at": datetime.now(UTC).isoformat(),
            "collection": {k: v for k, v in meta.items() if k != "counts"},
            "pack": pack_identity(meta["pack"], dim),
            "counts": {**{f"{k}s": v for k, v in counts.items()}, "sources": sources},
            "files": files,
        }
        part = out.with_name(out.name + ".part")
        mode = "w:gz" if out.name.endswith(".gz") else "w"
        with tarfile.open(part, mode) as tar:  # type: ignore[call-overload]
            body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(body)
            info.mtime = int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(body))
            for member in MEMBERS.values():
                tar.add(Path(tmp) / member, arcname=member, recursive=False)
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, out)
        return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of an archive (its first member), checked for a known format."""
    with _open(path) as tar:
        first = tar.next()
        if first is None or first.name != "manifest.json" or not first.isfile():
            raise ValidationError(
                "not a facesearch archive: manifest.json is not its first member", field="archive"
            )
        fh = tar.extractfile(first)
        assert fh is not None
        try:
            manifest = json.loads(fh.read(10_000_000))
        except ValueError:
            raise ValidationError("the archive's manifest is not JSON", field="archive") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValidationError(
            f"archive format {manifest.get('format') if isinstance(manifest, dict) else '?'!r} is not "
            f"the one this version reads ({FORMAT})",
            field="archive",
        )
    return manifest


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r|*")
    except (OSError, tarfile.TarError) as exc:
        raise ValidationError(f"cannot read the archive {path}: {exc}", field="archive") from None


def _rows(
    path: Path, manifest: dict[str, Any], progress: Progress | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The archive's rows in order, each member checked against the manifest as it ends."""
    yield "collection", manifest["collection"]
    kinds = {member: kind for kind, member in MEMBERS.items()}
    expected = manifest.get("files") or {}
    seen: set[str] = set()
    total = int((manifest.get("counts") or {}).get("faces", 0))
    faces = 0
    with _open(path) as tar:
        for info in tar:
            if info.name == "manifest.json":
                continue
            if info.name not in kinds or not info.isfile() or info.name in seen:
                raise ValidationError(f"unexpected archive member {info.name!r}", field="archive")
            seen.add(info.name)
            want = expected.get(info.name) or {}
            fh = tar.extractfile(info)
            assert fh is not None
            digest = hashlib.sha256()
            size = 0
            for line in fh:
                digest.update(line)
                size += len(line)
                row = _decode(line)
                yield kinds[info.name], row
                if kinds[info.name] == "face":
                    faces += 1
                    if progress is not None:
                        progress("import", faces, total)
            _check_member(info.name, digest, size, want)
    _check_complete(expected, seen)


def _check_member(name: str, digest: Any, size: int, want: dict[str, Any]) -> None:
    if digest.hexdigest() != want.get("sha256") or size != want.get("bytes"):
        raise ValidationError(
            f"archive member {name} does not match its checksum in the manifest: the file is damaged; "
            "nothing was imported",
            field="archive",
            details={"member": name},
        )


def _check_complete(expected: dict[str, Any], seen: set[str]) -> None:
    missing = sorted(set(expected) - seen)
    if missing:
        raise ValidationError(f"archive members missing: {', '.join(missing)}", field="archive")


def verify_archive(path: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read the whole archive once, checking every member's size and SHA-256 against the manifest
    (streamed: nothing is held in memory); returns the manifest. ValidationError when damaged."""
    manifest = manifest or read_manifest(path)
    expected = manifest.get("files") or {}
    seen: set[str] = set()
    with _open(path) as tar:
        for info in tar:
            if info.name == "manifest.json":
                continue
            want = expected.get(info.name)
            if want is None or not info.isfile() or info.name in seen:
                raise ValidationError(f"unexpected archive member {info.name!r}", field="archive")
            seen.add(info.name)
            fh = tar.extractfile(info)
            assert fh is not None
            digest = hashlib.sha256()
            size = 0
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            _check_member(info.name, digest, size, want)
    _check_complete(expected, seen)
    return manifest


def import_archive(
    store: Store,
    path: Path,
    *,
    name: str | None = None,
    keep_ids: bool = True,
    progress: Progress | None = None,
    migrate: Callable[[Collection], Any] | None = None,
) -> Collection:
    """Restore an archive as a new collection (``name``: under another name) in one transaction.

    An archive of a pack this server does not have as such (another name, embedding size or
    calibration) holds embeddings that cannot be compared with this server's: it is refused,
    unless every face has its sealed source (collection setting keep_source, this server holding
    the same FACESEARCH_SOURCE_KEY) and ``migrate`` is given, which then gets the imported
    collection to move it to a pack of this server (it serves once that migration is done)."""
    manifest = read_manifest(path)
    recorded = manifest.get("pack") or {}
    here = pack_identity(str(recorded.get("name")), recorded.get("dim"))
    same = {k: here.get(k) for k in ("name", "calibration_sha256")} == {
        k: recorded.get(k) for k in ("name", "calibration_sha256")
    }
    counts = manifest.get("counts") or {}
    with_sources = int(counts.get("faces", 0)) == int(counts.get("sources", -1))
    if not same and not (with_sources and migrate is not None):
        why = (
            "give a pack to migrate to (--pack)"
            if with_sources
            else "the archive holds no face sources to embed them again (keep_source was off)"
        )
        raise ValidationError(
            f"the archive's embeddings come from pack {recorded.get('name')!r} (calibration "
            f"{str(recorded.get('calibration_sha256'))[:12]}), which this server does not have as such: "
            f"they cannot be compared with this server's; {why}",
            field="pack",
            details={"archive_pack": recorded, "server_pack": here},
        )
    verify_archive(path, manifest)
    coll = store.import_rows(_rows(path, manifest, progress), name=name, keep_ids=keep_ids)
    if not same and migrate is not None:
        migrate(coll)
    return coll
