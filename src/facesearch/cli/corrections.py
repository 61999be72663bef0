"""Corrections (`facesearch persons not-this`, `different`, `merge`, `split`, ...) and unknown faces
(`facesearch unknowns clusters`, `name`, `forget`), as the HTTP API has them (``--json``: its fields)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facesearch.cli.common import (
    DataDir,
    JsonOpt,
    cli_audit,
    emit,
    handle_errors,
    print_json,
    read_photo,
    with_service,
)
from facesearch.cli.persons import CollectionOpt, PersonArg, _metadata, _person_json, persons_app
from facesearch.errors import ValidationError

unknowns_app = typer.Typer(
    help="Unknown faces (collection setting remember_unknown): clusters, name them, forget them.",
    no_args_is_help=True,
)
GroupOpt = Annotated[list[str] | None, typer.Option("--group", "-g", help="a group (repeat for more)")]


def _negative_json(n: Any, collection: str, removed: str | None = None) -> dict[str, Any]:
    from facesearch.api.responses import NegativeOut

    return NegativeOut.of(n, collection, removed).model_dump(mode="json")


# --- negatives ---------------------------------------------------------------------------------


@persons_app.command("not-this")
@handle_errors
def persons_not_this(
    person: PersonArg,
    collection: CollectionOpt,
    photo: Annotated[Path | None, typer.Argument(help="a photo of the face that is not this person")] = None,
    face: Annotated[str | None, typer.Option("--face", help="or a stored face (fac_...)")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Record that a face is not this person: it is never matched to them again (a face of
    their own is removed from them). Example: facesearch persons not-this obama -c staff lookalike.jpg"""

    def work(svc: Any) -> tuple[Any, str | None, str]:
        image = read_photo(photo, svc.settings.max_upload_bytes) if photo is not None else None
        negative, removed = svc.add_negative(collection, person, image=image, face=face)
        return negative, removed, svc.collection(collection).id

    negative, removed, coll_id = with_service(data_dir, work)
    note = f" (face {removed} removed from the person)" if removed else ""
    emit(as_json, lambda: _negative_json(negative, coll_id, removed), f"added negative {negative.id}{note}")


@persons_app.command("negatives")
@handle_errors
def persons_negatives(
    person: PersonArg, collection: CollectionOpt, as_json: JsonOpt = False, data_dir: DataDir = None
) -> None:
    """List a person's "not this person" corrections. Example: facesearch persons negatives obama -c staff"""
    found, coll_id = with_service(
        data_dir, lambda svc: (svc.list_negatives(collection, person), svc.collection(collection).id)
    )
    if as_json:
        print_json({"negatives": [_negative_json(n, coll_id) for n in found]})
        return
    for n in found:
        source = f"  from face {n.source_face_id}" if n.source_face_id else ""
        typer.echo(f"{n.id}  added {n.created_at:%Y-%m-%d %H:%M}{source}")
    if not found:
        typer.echo("no negatives")


@persons_app.command("delete-negative")
@handle_errors
def persons_delete_negative(
    person: PersonArg,
    negative: Annotated[str, typer.Argument(help="the negative's id (neg_...)")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Remove a negative. Example: facesearch persons delete-negative obama neg_... -c staff"""
    with_service(data_dir, lambda svc: svc.delete_negative(collection, person, negative))
    emit(as_json, lambda: {"id": negative, "deleted": True}, f"deleted negative {negative}")


# --- different people, merge, split ----------------------------------------------------------


@persons_app.command("different")
@handle_errors
def persons_different(
    person: PersonArg,
    other: Annotated[str, typer.Argument(help="the other person")],
    collection: CollectionOpt,
    remove: Annotated[bool, typer.Option("--remove", help="forget the record instead")] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Record that two persons are different people (both matching one face is then reported as
    ambiguous). Example: facesearch persons different ann eve -c staff"""
    if remove:
        with_service(data_dir, lambda svc: svc.unset_different(collection, person, other))
        emit(as_json, lambda: {"id": other, "deleted": True}, f"{person} and {other}: record removed")
        return
    others = with_service(data_dir, lambda svc: svc.set_different(collection, person, other))
    emit(
        as_json,
        lambda: {"persons": [_person_json(p, with_faces=False) for p in others]},
        f"{person} is recorded as different from: {', '.join(p.external_id for p in others)}",
    )


@persons_app.command("merge")
@handle_errors
def persons_merge(
    person: PersonArg,
    source: Annotated[str, typer.Argument(help="the person merged in (and deleted)")],
    collection: CollectionOpt,
    metadata: Annotated[str, typer.Option(help="target (default), source or union")] = "target",
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Merge SOURCE into PERSON: faces, groups and corrections move over, SOURCE is deleted.
    Example: facesearch persons merge obama barack -c staff"""

    def work(svc: Any) -> Any:
        src = svc.get_person(collection, source)
        if not yes:
            typer.confirm(f"Merge {src.external_id} ({len(src.faces)} face(s)) into {person}?", abort=True)
        merged = svc.merge_persons(collection, person, src.id, metadata=metadata)
        summary = {"person_id": merged.id, "from": src.id, "faces": len(merged.faces)}
        cli_audit(svc.store, "merge_persons", "facesearch persons merge", summary, merged.collection_id)
        return merged

    p = with_service(data_dir, work)
    emit(as_json, lambda: _person_json(p), f"merged {source} into {p.external_id}: {len(p.faces)} face(s)")


@persons_app.command("split")
@handle_errors
def persons_split(
    person: PersonArg,
    faces: Annotated[list[str], typer.Argument(help="the faces (fac_...) to move to the new person")],
    collection: CollectionOpt,
    external_id: Annotated[str | None, typer.Option(help="the new person's external id")] = None,
    name: Annotated[str, typer.Option(help="the new person's name")] = "",
    metadata: Annotated[str | None, typer.Option(help="JSON object")] = None,
    group: GroupOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Move faces of a person to a new person. Example: facesearch persons split obama fac_... -c staff
    --external-id michelle"""
    meta = _metadata(metadata)
    p = with_service(
        data_dir,
        lambda svc: svc.split_person(
            collection, person, faces, external_id=external_id, name=name, metadata=meta, groups=group or []
        ),
    )
    emit(
        as_json,
        lambda: _person_json(p),
        f"created person {p.external_id} ({p.id}) with {len(p.faces)} face(s)",
    )


# --- unknown faces -----------------------------------------------------------------------------


@unknowns_app.command("clusters")
@handle_errors
def unknowns_clusters(
    collection: CollectionOpt,
    limit: Annotated[int, typer.Option(help="cluster the newest this many unknown faces")] = 2000,
    min_size: Annotated[int, typer.Option(help="only clusters with this many faces")] = 1,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Unknown faces grouped into likely-same-person clusters, largest first.
    Example: facesearch unknowns clusters -c staff --min-size 3"""
    from facesearch.api.responses import UnknownClusterOut

    clusters, held, coll_id = with_service(
        data_dir,
        lambda svc: (
            *svc.unknown_clusters(collection, limit=limit, min_size=min_size),
            svc.collection(collection).id,
        ),
    )
    if as_json:
        out = [UnknownClusterOut.of(c, coll_id).model_dump(mode="json") for c in clusters]
        print_json({"clusters": out, "unknown_faces": held, "clustered": min(held, limit)})
        return
    typer.echo(f"{held} unknown face(s), {len(clusters)} cluster(s)")
    for c in clusters:
        typer.echo(
            f"{c.id}  {c.size:5} face(s)  first {c.first_seen:%Y-%m-%d %H:%M}  "
            f"last {c.last_seen:%Y-%m-%d %H:%M}"
        )


@unknowns_app.command("list")
@handle_errors
def unknowns_list(
    collection: CollectionOpt,
    limit: Annotated[int, typer.Option(help="page size, 1-1000")] = 50,
    cursor: Annotated[str | None, typer.Option(help="cursor printed by the previous page")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Remembered unknown faces, newest first, with when and by which request each was seen.
    Example: facesearch unknowns list -c staff"""
    from facesearch.api.responses import UnknownFaceOut

    found, next_cursor = with_service(
        data_dir, lambda svc: svc.list_unknowns(collection, limit=limit, cursor=cursor)
    )
    if as_json:
        page = [UnknownFaceOut.of(u).model_dump(mode="json") for u in found]
        print_json({"unknowns": page, "next_cursor": next_cursor})
        return
    for u in found:
        b = u.box
        typer.echo(
            f"{u.id}  {u.seen_at:%Y-%m-%d %H:%M}  {u.source:12} {b.width}x{b.height} px  "
            f"{u.request_id or '-'}"
        )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


@unknowns_app.command("name")
@handle_errors
def unknowns_name(
    cluster: Annotated[str, typer.Argument(help="a cluster id (or any face of it)")],
    collection: CollectionOpt,
    person: Annotated[str | None, typer.Option(help="add to this existing person instead")] = None,
    external_id: Annotated[str | None, typer.Option(help="the new person's external id")] = None,
    name: Annotated[str, typer.Option(help="the new person's name")] = "",
    group: GroupOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Turn a cluster of unknown faces into a new person (or more faces of --person).
    Example: facesearch unknowns name unk_... -c staff --external-id visitor7 --name "Visitor 7\""""
    if person is not None and (external_id or name or group):
        raise ValidationError("--person adds to an existing person: no --external-id, --name or --group")
    p, added = with_service(
        data_dir,
        lambda svc: svc.name_unknowns(
            collection, cluster=cluster, person=person, external_id=external_id, name=name, groups=group or []
        ),
    )
    emit(
        as_json,
        lambda: {"person": _person_json(p), "faces_added": added},
        f"{p.external_id} ({p.id}) got {added} face(s)",
    )


@unknowns_app.command("forget")
@handle_errors
def unknowns_forget(
    unknowns: Annotated[list[str], typer.Argument(help="unknown faces (unk_...)")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Forget unknown faces now. Example: facesearch unknowns forget unk_... unk_... -c staff"""
    gone = with_service(data_dir, lambda svc: svc.forget_unknowns(collection, unknowns))
    emit(as_json, lambda: {"forgotten": gone}, f"forgot {gone} unknown face(s)")
