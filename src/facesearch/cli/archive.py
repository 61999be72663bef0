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
    pack: Annotated[
        str | None,
        typer.Option(
            help="an archive of a pack this server lacks, with face sources: migrate it to this pack"
        ),
    ] = None,
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
                migrate=(lambda c: svc.start_migration(c.id, pack)) if pack else None,
            )
        for m in svc.list_migrations(coll.id) if pack else []:
            with _bar("migrated") as bar:
                job = bar.add_task("migrate", total=m.record.total)

                def show(st: Any, job: Any = job, bar: Any = bar) -> None:
                    bar.update(job, completed=st.record.done, total=st.record.total)

                svc.migrations.run(m.record.id, progress=show)
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


@handle_errors
def collections_migrate(
    collection: Annotated[str, typer.Argument(help="the collection (name or id)")],
    pack: Annotated[str, typer.Option(help="the model pack to move it to")],
    drop_unmigratable: Annotated[
        bool,
        typer.Option(
            "--drop-unmigratable", help="delete faces that cannot be embedded again (else they block)"
        ),
    ] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Move a collection to another model pack: embed every face again from its stored source
    (setting keep_source), with a progress bar, then switch in one transaction. A migration that
    was interrupted (here or in a server) is resumed.
    Example: facesearch collections migrate staff --pack onnx"""
    from facesearch.api.responses import MigrationOut
    from facesearch.cli.service import open_service

    svc = open_service(data_dir)
    try:
        running = [
            m
            for m in svc.list_migrations(collection)
            if m.record.state == "running" and m.record.to_pack == pack
        ]
        started = (
            running[0]
            if running
            else svc.start_migration(collection, pack, drop_unmigratable=drop_unmigratable)
        )
        with _bar("migrated") as bar:
            task = bar.add_task("migrate", total=started.record.total, completed=started.record.done)

            def show(st: Any) -> None:
                bar.update(task, completed=st.record.done + len(st.record.failed), total=st.record.total)

            final = svc.migrations.run(started.record.id, progress=show)
        cli_audit(
            svc.store,
            "migrate",
            "facesearch collections migrate",
            {"migration_id": final.record.id, "to_pack": pack, "state": final.record.state},
            final.record.collection_id,
        )
    finally:
        svc.close()
    r = final.record
    failed = "".join(f"\n  cannot embed again: {face} ({why})" for face, why in r.failed.items())
    res = r.result
    text = {
        "done": f"{collection} now uses {pack}: {res.get('faces', 0)} faces switched, "
        f"{res.get('faces_dropped', 0)} dropped, {res.get('negatives_dropped', 0)} negatives dropped",
        "blocked": f"{collection} stays on {r.from_pack}: {len(r.failed)} face(s) cannot be embedded "
        "again; delete them, or run again with --drop-unmigratable" + failed,
    }.get(r.state, f"migration {r.id}: {r.state}")
    emit(as_json, lambda: MigrationOut.of(final).model_dump(mode="json"), text)
    if r.state == "blocked":
        raise typer.Exit(1)


@handle_errors
def sources_new_key(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="write the key to this new file (mode 0600) instead of stdout"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a new key for FACESEARCH_SOURCE_KEY (the seal of stored face sources). Keep it safe and
    with your backups: the sources cannot be opened without it. It goes to stdout only when asked
    for there (no --out), for `export FACESEARCH_SOURCE_KEY=$(facesearch sources new-key)`.
    Example: facesearch sources new-key --out /etc/facesearch/source.key"""
    import os

    from facesearch.errors import Conflict
    from facesearch.service.sources import new_key

    key = new_key()
    if out is None:
        emit(as_json, lambda: {"key": key}, key)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{out} exists: a key is never overwritten", details={"file": str(out)}) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    emit(as_json, lambda: {"file": str(out)}, f"source key written to {out} (mode 0600)")
