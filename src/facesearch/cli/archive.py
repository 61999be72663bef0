"""`facesearch export COLLECTION --out FILE` and `facesearch import FILE`: backup and restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facesearch.cli.common import DataDir, JsonOpt, cli_audit, emit, handle_errors


def _bar(what: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(  # on stderr: stdout carries the answer (--json)
        TextColumn(f"{what} faces"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


@handle_errors
def export(
    collection: Annotated[str, typer.Argument(help="the collection (name or id)")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="the archive to write (.tar, or .tar.gz to compress)")
    ],
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Write a collection (persons, groups, faces with embeddings and thumbnails, corrections,
    settings) to a portable archive, consistent while the server runs.
    Example: facesearch export staff --out staff.tar.gz"""
    from facesearch.archive import export_collection
    from facesearch.cli.server import _open_store

    store = _open_store(data_dir)
    try:
        with _bar("exported") as bar:
            task = bar.add_task("export", total=None)
            manifest = export_collection(
                store,
                collection,
                out,
                progress=lambda _w, done, total: bar.update(task, completed=done, total=total),
            )
        coll = manifest["collection"]
        summary = {"file": str(out), "counts": manifest["counts"], "bytes": out.stat().st_size}
        cli_audit(store, "export", "facesearch export", summary, coll["id"])
    finally:
        store.close()
    c = manifest["counts"]
    emit(
        as_json,
        lambda: {"file": str(out), "bytes": out.stat().st_size, **manifest},
        f"exported {coll['name']}: {c['persons']} persons, {c['faces']} faces, {c['negatives']} negatives "
        f"to {out} ({out.stat().st_size:,} bytes)",
    )


@handle_errors
def import_(
    archive: Annotated[Path, typer.Argument(help="an archive written by facesearch export")],
    name: Annotated[str | None, typer.Option(help="import under this collection name")] = None,
    new_ids: Annotated[
        bool, typer.Option("--new-ids", help="give everything new ids (needed where the archive's ids exist)")
    ] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Restore an archive as a new collection, in one transaction, after checking its format, its
    model pack and every member's checksum. Example: facesearch import staff.tar.gz --name staff-restored"""
    from facesearch.api.responses import CollectionOut
    from facesearch.archive import import_archive
    from facesearch.cli.service import open_service

    if not archive.is_file():
        from facesearch.errors import ValidationError

        raise ValidationError(f"no such file: {archive}", field="archive")
    svc = open_service(data_dir)
    try:
        with _bar("imported") as bar:
            task = bar.add_task("import", total=None)
            coll = import_archive(
                svc.store,
                archive,
                name=name,
                keep_ids=not new_ids,
                progress=lambda _w, done, total: bar.update(task, completed=done, total=total),
            )
        svc.sync()
        full = svc.get_collection(coll.id)
        cli_audit(
            svc.store,
            "import",
            "facesearch import",
            {"file": str(archive), "faces": full.face_count},
            coll.id,
        )
    finally:
        svc.close()
    emit(
        as_json,
        lambda: CollectionOut.of(full).model_dump(mode="json"),
        f"imported {full.name} ({full.id}): {full.person_count} persons, {full.face_count} faces",
    )
