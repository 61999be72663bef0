"""`facesearch persons ...` and `facesearch groups ...`: every person and group operation of the
HTTP API, with its names and (with ``--json``) its fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from facesearch.errors import ValidationError

T = TypeVar("T")

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="collection name or id")]
PersonArg = Annotated[str, typer.Argument(help="the person's id (per_...) or external id")]

persons_app = typer.Typer(
    help="Persons: list, show, create (with photos), update, delete, add and delete faces.",
    no_args_is_help=True,
)
groups_app = typer.Typer(
    help="Groups of persons: list, create, delete, add and remove members.", no_args_is_help=True
)


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--metadata is not valid JSON: {exc}", field="metadata") from None
    if not isinstance(value, dict):
        raise ValidationError("--metadata must be a JSON object", field="metadata")
    return value


def _person_json(person: Any, *, with_faces: bool = True) -> dict[str, Any]:
    from facesearch.api.responses import PersonOut

    return PersonOut.of(person, with_faces=with_faces).model_dump(mode="json")


def _person_line(p: Any) -> str:
    groups = ",".join(p.groups) or "-"
    return f"{p.external_id:32} {p.name or '-':32} {groups:20} {p.id}"


@persons_app.command("list")
@handle_errors
def persons_list(
    collection: CollectionOpt,
    group: Annotated[str | None, typer.Option(help="only this group")] = None,
    external_id: Annotated[str | None, typer.Option(help="only this external id")] = None,
    name_prefix: Annotated[str | None, typer.Option(help="only names starting with this")] = None,
    limit: Annotated[int, typer.Option(help="page size, 1-1000")] = 50,
    cursor: Annotated[str | None, typer.Option(help="cursor printed by the previous page")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """List the persons of a collection, a page at a time. Example: facesearch persons list -c staff"""
    persons, next_cursor = with_service(
        data_dir,
        lambda svc: svc.list_persons(
            collection,
            group=group,
            external_id=external_id,
            name_prefix=name_prefix,
            limit=limit,
            cursor=cursor,
        ),
    )
    if as_json:
        page = [_person_json(p, with_faces=False) for p in persons]
        print_json({"persons": page, "next_cursor": next_cursor})  # the HTTP API's shape
        return
    for p in persons:
        typer.echo(_person_line(p))
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")


@persons_app.command("show")
@handle_errors
def persons_show(
    person: PersonArg, collection: CollectionOpt, as_json: JsonOpt = False, data_dir: DataDir = None
) -> None:
    """A person with their faces. Example: facesearch persons show obama -c staff"""
    p = with_service(data_dir, lambda svc: svc.get_person(collection, person))
    if as_json:
        print_json(_person_json(p))
        return
    typer.echo(_person_line(p))
    if p.metadata:
        typer.echo(f"  metadata {json.dumps(p.metadata, ensure_ascii=False, sort_keys=True)}")
    for f in p.faces:
        b = f.box
        typer.echo(
            f"  face {f.id}  {b.width}x{b.height} px  pack {f.pack}  added {f.created_at:%Y-%m-%d %H:%M}"
        )
    if not p.faces:
        typer.echo("  no faces yet: facesearch persons add-face PERSON PHOTO -c COLLECTION")


@persons_app.command("create")
@handle_errors
def persons_create(
    collection: CollectionOpt,
    photos: Annotated[list[Path] | None, typer.Argument(help="photos of the person (central face)")] = None,
    external_id: Annotated[str | None, typer.Option(help="your id for the person (unique)")] = None,
    name: Annotated[str, typer.Option(help="display name")] = "",
    metadata: Annotated[str | None, typer.Option(help='JSON object, e.g. \'{"team": "night"}\'')] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="a group (repeat for more)")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Create a person, enrolling each photo's central face in one transaction (one refused photo
    refuses all). Example: facesearch persons create -c staff --external-id rose --name "Rose" rose.jpg"""
    meta = _metadata(metadata)

    def work(svc: Any) -> Any:
        images = [read_photo(p, svc.settings.max_upload_bytes) for p in photos or []]
        return svc.create_person(
            collection, external_id=external_id, name=name, metadata=meta, groups=group or [], images=images
        )

    p = with_service(data_dir, work)
    emit(
        as_json,
        lambda: _person_json(p),
        f"created person {p.external_id} ({p.id}) with {len(p.faces)} face(s)",
    )


@persons_app.command("update")
@handle_errors
def persons_update(
    person: PersonArg,
    collection: CollectionOpt,
    name: Annotated[str | None, typer.Option(help="a new display name")] = None,
    external_id: Annotated[str | None, typer.Option(help="a new external id")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object: replaces the metadata")] = None,
    groups: Annotated[
        str | None, typer.Option(help="comma-separated groups: replaces the groups ('' for none)")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Edit a person (as PATCH over HTTP). Example: facesearch persons update rose -c staff --groups vip"""
    fields: dict[str, Any] = {"name": name, "external_id": external_id, "metadata": _metadata(metadata)}
    if groups is not None:
        fields["groups"] = [g.strip() for g in groups.split(",") if g.strip()]
    p = with_service(
        data_dir,
        lambda svc: svc.update_person(
            collection, person, **{k: v for k, v in fields.items() if v is not None}
        ),
    )
    emit(as_json, lambda: _person_json(p), f"updated {_person_line(p)}")


@persons_app.command("delete")
@handle_errors
def persons_delete(
    person: PersonArg,
    collection: CollectionOpt,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a person with their faces and thumbnails. Example: facesearch persons delete rose -c staff"""

    def work(svc: Any) -> Any:
        p = svc.get_person(collection, person)
        if not yes:
            typer.confirm(
                f"Delete {p.external_id} ({p.name or 'no name'}) and {len(p.faces)} face(s)?", abort=True
            )
        svc.delete_person(collection, p.id)
        cli_audit(svc.store, "delete_person", "facesearch persons delete", {"id": p.id}, p.collection_id)
        return p

    p = with_service(data_dir, work)
    emit(as_json, lambda: {"id": p.id, "deleted": True}, f"deleted person {p.external_id} ({p.id})")


@persons_app.command("add-face")
@handle_errors
def persons_add_face(
    person: PersonArg,
    photo: Annotated[Path, typer.Argument(help="a photo of the person (central face)")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Add a face from a photo. Example: facesearch persons add-face rose rose2.jpg -c staff"""
    from facesearch.api.responses import FaceOut

    face = with_service(
        data_dir,
        lambda svc: svc.add_face(collection, person, read_photo(photo, svc.settings.max_upload_bytes)),
    )
    emit(
        as_json,
        lambda: FaceOut.of(face).model_dump(mode="json"),
        f"added face {face.id} ({face.box.width}x{face.box.height} px) to {person}",
    )


@persons_app.command("delete-face")
@handle_errors
def persons_delete_face(
    face: Annotated[str, typer.Argument(help="the face's id (fac_...)")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Delete one face (its embedding and thumbnail).
    Example: facesearch persons delete-face fac_... -c staff"""

    def work(svc: Any) -> None:
        svc.delete_face(collection, face)
        coll = svc.collection(collection).id
        cli_audit(svc.store, "delete_face", "facesearch persons delete-face", {"id": face}, coll)

    with_service(data_dir, work)
    emit(as_json, lambda: {"id": face, "deleted": True}, f"deleted face {face}")


# --- groups ---------------------------------------------------------------------------


def _group_json(g: Any) -> dict[str, Any]:
    from facesearch.api.responses import GroupOut

    return GroupOut.of(g).model_dump(mode="json")


@groups_app.command("list")
@handle_errors
def groups_list(collection: CollectionOpt, as_json: JsonOpt = False, data_dir: DataDir = None) -> None:
    """The groups of a collection with their member counts. Example: facesearch groups list -c staff"""
    groups = with_service(data_dir, lambda svc: svc.list_groups(collection))
    if as_json:
        print_json({"groups": [_group_json(g) for g in groups], "next_cursor": None})
        return
    if not groups:
        typer.echo("No groups yet: facesearch groups create NAME -c COLLECTION")
    for g in groups:
        typer.echo(f"{g.name:32} {g.person_count:>8} persons  {g.id}")


@groups_app.command("create")
@handle_errors
def groups_create(
    name: Annotated[str, typer.Argument(help="the group's name (no commas)")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Create a group. Example: facesearch groups create night-shift -c staff"""
    g = with_service(data_dir, lambda svc: svc.create_group(collection, name))
    emit(as_json, lambda: _group_json(g), f"created group {g.name} ({g.id})")


@groups_app.command("delete")
@handle_errors
def groups_delete(
    name: Annotated[str, typer.Argument(help="the group's name or id")],
    collection: CollectionOpt,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a group (its persons stay). Example: facesearch groups delete night-shift -c staff"""
    with_service(data_dir, lambda svc: svc.delete_group(collection, name))
    emit(as_json, lambda: {"id": name, "deleted": True}, f"deleted group {name}")


def _membership(name: str, verb: str) -> Callable[..., None]:
    @handle_errors
    def command(
        group: Annotated[str, typer.Argument(help="the group's name or id")],
        person: PersonArg,
        collection: CollectionOpt,
        as_json: JsonOpt = False,
        data_dir: DataDir = None,
    ) -> None:
        p = with_service(data_dir, lambda svc: getattr(svc, name)(collection, group, person))
        emit(
            as_json,
            lambda: _person_json(p, with_faces=False),
            f"{verb} {p.external_id}: groups {','.join(p.groups) or 'none'}",
        )

    return command


groups_app.command("add", help="Put a person in a group. Example: facesearch groups add vip obama -c staff")(
    _membership("add_member", "added")
)
groups_app.command(
    "remove", help="Take a person out of a group. Example: facesearch groups remove vip obama -c staff"
)(_membership("remove_member", "removed"))
