"""CLI commands over the service (FaceSearch): collections, enrol, identify, persons."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
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
from facesearch.cli.context import settings_for
from facesearch.errors import FaceSearchError, ValidationError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="collection name or id")]

collections_app = typer.Typer(help="Create, list, update and delete collections.", no_args_is_help=True)


def open_service(data_dir: Path | None, *, workers: int = 0) -> Any:
    """The FaceSearch service on the data folder; ``workers`` > 0 embeds in worker processes."""
    from facesearch.pipeline.analyzer import ProcessAnalyzer
    from facesearch.service import FaceSearch

    settings = settings_for(data_dir)
    # The CLI's batch work wants photos per second, not one photo fast: one core per photo always
    # (a photo alone in flight between two others would take the core its neighbour needs).
    analyzer = ProcessAnalyzer(workers, config=settings.pack_config(), idle_cores=1) if workers > 0 else None
    return FaceSearch(settings, analyzer=analyzer)


@collections_app.command("create")
@handle_errors
def collections_create(
    name: Annotated[str, typer.Argument(help="unique name: letters, digits, '.', '_', '-'")],
    title: Annotated[str, typer.Option(help="a title for people")] = "",
    description: Annotated[str, typer.Option(help="what the collection holds")] = "",
    kind: Annotated[str, typer.Option(help="internal, external or watchlist")] = "internal",
    pack: Annotated[
        str | None, typer.Option(help="model pack (default: the most accurate installed: onnx, else dlib)")
    ] = None,
    settings: Annotated[
        str | None, typer.Option(help="JSON settings, e.g. '{\"auto_enroll\": true}'")
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Create a collection.
    Example: facesearch collections create staff --settings '{"max_false_positive_rate": 0.001}'"""
    parsed = _json_option(settings, "settings")
    c = with_service(
        data_dir,
        lambda svc: svc.create_collection(
            name, title=title, description=description, kind=kind, pack=pack, settings=parsed
        ),
    )
    emit(as_json, lambda: _collection_json(c), f"created collection {c.name} ({c.id}, pack {c.pack})")


@collections_app.command("list")
@handle_errors
def collections_list(as_json: JsonOpt = False, data_dir: DataDir = None) -> None:
    """List collections with their person and face counts. Example: facesearch collections list --json"""
    svc = open_service(data_dir)
    try:
        colls = svc.list_collections()
    finally:
        svc.close()
    if as_json:
        print_json([_collection_json(c) for c in colls])  # the HTTP API's fields
        return
    if not colls:
        typer.echo("No collections yet: facesearch collections create NAME")
    for c in colls:
        typer.echo(
            f"{c.name:24} {c.person_count:>8} persons {c.face_count:>9} faces  {c.kind:9} {c.pack}  {c.id}"
        )


def _collection_json(c: Any) -> dict[str, Any]:
    from facesearch.api.responses import CollectionOut

    out: dict[str, Any] = CollectionOut.of(c).model_dump(mode="json")
    return out


def _json_option(text: str | None, option: str) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--{option} is not valid JSON: {exc}", field=option) from None


@collections_app.command("update")
@handle_errors
def collections_update(
    ref: Annotated[str, typer.Argument(help="collection name or id")],
    name: Annotated[str | None, typer.Option(help="a new name (API keys follow: they bind to ids)")] = None,
    title: Annotated[str | None, typer.Option(help="a new title")] = None,
    description: Annotated[str | None, typer.Option(help="a new description")] = None,
    kind: Annotated[str | None, typer.Option(help="internal, external or watchlist")] = None,
    settings: Annotated[
        str | None,
        typer.Option(
            help="JSON settings merged key by key (null removes one), "
            "e.g. '{\"max_false_positive_rate\": 0.001}'"
        ),
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Edit a collection's name, title, description, kind or settings (as PATCH over HTTP).
    Example: facesearch collections update staff --name staff-2026"""
    parsed = _json_option(settings, "settings")
    c = with_service(
        data_dir,
        lambda svc: svc.update_collection(
            ref, name=name, title=title, description=description, kind=kind, settings=parsed
        ),
    )
    text = f"updated collection {c.name} ({c.id}): settings {json.dumps(c.settings, sort_keys=True)}"
    emit(as_json, lambda: _collection_json(c), text)


@collections_app.command("delete")
@handle_errors
def collections_delete(
    name: Annotated[str, typer.Argument(help="collection name or id")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a collection with every person, face and thumbnail in it.
    Example: facesearch collections delete staff --yes"""
    svc = open_service(data_dir)
    try:
        c = svc.get_collection(name)
        if not yes:
            typer.confirm(
                f"Delete {c.name} with {c.person_count} persons and {c.face_count} faces?", abort=True
            )
        svc.delete_collection(c.id)
        cli_audit(svc.store, "delete_collection", "facesearch collections delete", {"id": c.id}, c.id)
    finally:
        svc.close()
    emit(as_json, lambda: {"id": c.id, "deleted": True}, f"deleted collection {c.name}")


@dataclass
class EnrolReport:
    """What an enrolment run did."""

    enrolled: int = 0
    skipped: int = 0
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # path, code, reason
    not_enrolled: list[str] = field(default_factory=list)  # folders whose every photo was refused
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # Ctrl-C: finish what is in flight


def _enrol_person(svc: Any, collection: Any, folder: Path, report: EnrolReport, tick: Any) -> None:
    external_id = folder.name
    found, _ = svc.list_persons(collection, external_id=external_id, limit=1)
    person = found[0] if found else None
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    refused_here = 0
    for photo in photos:
        if report.stop.is_set():
            return
        try:
            data = read_photo(photo, svc.settings.max_upload_bytes)
            if person is not None and svc.photo_enrolled(collection, person.id, data):
                with report.lock:
                    report.skipped += 1
                continue
            if person is None:
                person = svc.create_person(
                    collection, external_id=external_id, name=external_id.replace("_", " "), images=[data]
                )
            else:
                svc.add_face(collection, person.id, data)
            with report.lock:
                report.enrolled += 1
        except FaceSearchError as exc:
            reason = str(exc.details.get("reason", exc.message))
            refused_here += 1
            with report.lock:
                report.refused.append((str(photo), exc.code, reason))
        finally:
            tick()
    if person is None and photos and refused_here == len(photos):
        with report.lock:
            report.not_enrolled.append(external_id)


#: Refused photos listed on the terminal; the rest are in the report file.
SHOWN_REFUSALS = 20


def _write_refusals(data_dir: Path, collection: str, refused: list[tuple[str, str, str]]) -> Path:
    """Every refused photo, one per line (path, code, reason, tab-separated), in the data folder."""
    from datetime import datetime

    folder = data_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"enroll-{collection}-{stamp}-refused.tsv"
    lines = ["path\tcode\treason"] + ["\t".join(row) for row in sorted(refused)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@handle_errors
def enroll(
    folder: Annotated[Path, typer.Argument(help="a folder with one sub-folder of photos per person")],
    collection: CollectionOpt,
    workers: Annotated[
        int, typer.Option(help="worker processes for embedding (0: the settings' FACESEARCH_WORKERS, or 1)")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    data_dir: DataDir = None,
) -> None:
    """Enrol a folder of persons (sub-folder name = external id); re-run it to resume.
    Example: facesearch enroll ./photos -c staff"""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not folder.is_dir():
        raise ValidationError(f"no such folder: {folder}", field="folder")
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    total = sum(1 for p in people for f in p.iterdir() if f.suffix.lower() in PHOTO_SUFFIXES)
    settings = settings_for(data_dir)
    n_workers = workers or settings.workers or 1
    svc = open_service(data_dir, workers=n_workers)
    report = EnrolReport()
    interrupted = False
    try:
        coll = svc.collection(collection)  # read once, passed to every call
        # Nothing searches while the folder is enrolled: the index catches up once, at the end,
        # instead of after every photo (bench/enrol_cli.py).
        svc.follower.defer_writes = True
        columns = (TextColumn("enrolling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        from rich.console import Console

        # On stderr: stdout is for the summary (or the JSON of --json).
        with Progress(*columns, transient=False, console=Console(stderr=True)) as progress:
            task = progress.add_task("enrol", total=total)

            def tick() -> None:
                progress.advance(task)

            # Two persons in flight per worker: while one thread writes its photo to SQL, the
            # worker already analyses the next (bench/enrol_cli.py: 1 worker 22 -> 30 photos/s).
            with ThreadPoolExecutor(max_workers=n_workers * 2) as pool:
                futures = [pool.submit(_enrol_person, svc, coll, p, report, tick) for p in people]
                try:
                    for future in futures:
                        future.result()
                except KeyboardInterrupt:
                    interrupted = True
                    report.stop.set()  # each person stops after the photo in flight
                    for future in futures:
                        future.cancel()
    finally:
        svc.follower.defer_writes = False
        try:
            svc.sync()
        finally:
            svc.close()
    refused_file = _write_refusals(settings.data_dir, coll.name, report.refused) if report.refused else None
    if as_json:
        print_json(
            {
                "enrolled": report.enrolled,
                "already_enrolled": report.skipped,
                "refused": [{"path": p, "code": c, "reason": r} for p, c, r in sorted(report.refused)],
                "refused_file": str(refused_file) if refused_file else None,
                "persons_not_enrolled": sorted(report.not_enrolled),
                "interrupted": interrupted,
            }
        )
    else:
        _enrol_summary(report, refused_file, interrupted)
    if interrupted:
        raise typer.Exit(130)


def _enrol_summary(report: EnrolReport, refused_file: Path | None, interrupted: bool) -> None:
    if interrupted:
        typer.echo("interrupted: stopped after the photos in flight; run the same command again to resume")
    typer.echo(
        f"{report.enrolled} photos enrolled, {report.skipped} already enrolled, {len(report.refused)} refused"
    )
    reasons: dict[str, int] = {}
    for _, code, reason in report.refused:
        key = f"{code} {reason}" if reason and reason != code else code
        reasons[key] = reasons.get(key, 0) + 1
    for key, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {count:>6}  {key}")
    for path, code, reason in sorted(report.refused)[:SHOWN_REFUSALS]:
        typer.echo(f"  refused {path}: {code} {reason}")
    if refused_file is not None:
        more = len(report.refused) - SHOWN_REFUSALS
        lead = f"  ... and {more} more; " if more > 0 else "  "
        typer.echo(f"{lead}every refused photo is listed in {refused_file}")
    if report.not_enrolled:
        names = sorted(report.not_enrolled)
        shown = ", ".join(names[:SHOWN_REFUSALS])
        if len(names) > SHOWN_REFUSALS:
            shown += f" and {len(names) - SHOWN_REFUSALS} more"
        typer.echo(f"{len(names)} persons not enrolled (every photo refused): {shown}")


FprOpt = Annotated[
    float | None,
    typer.Option(
        "--max-false-positive-rate",
        help="the chance a stranger matches anyone in the collection, e.g. 0.001 "
        "(default: the collection's, 0.01)",
    ),
]
ThresholdOpt = Annotated[float | None, typer.Option(help="minimum similarity 0-1, instead of a rate")]


def _rule_text(rule: Any, threshold: float) -> str:
    if rule is None:
        return f"similarity >= {threshold:.3f}"
    rate = rule.kind == "max_false_positive_rate"
    what = f"max false-positive rate {rule.value:g}" if rate else "threshold"
    return f"similarity >= {threshold:.3f} ({what}, set by the {rule.set_by})"


def _strength(m: Any) -> str:
    """How much a match is worth in this gallery, from its expected number of false matches."""
    expected = m.expected_false_matches
    if expected is None or expected <= 0:
        return ""
    if expected >= 1:
        return f"  (weak: {expected:.2g} strangers expected to score this high here)"
    n = 1 / expected
    odds = f"{n / 1e9:.2g} billion" if n >= 1e9 else f"{n / 1e6:.2g} million" if n >= 1e6 else f"{n:,.0f}"
    at_most = "under " if m.false_match_rate is not None and m.false_match_rate <= 1e-7 else ""
    return f"  ({at_most}1 in {odds} chance a stranger scores this high here)"


@handle_errors
def identify(
    image: Annotated[Path, typer.Argument(help="photo of the face to identify")],
    collection: CollectionOpt,
    top_k: Annotated[int, typer.Option("--top-k", help="how many matches, 1-100")] = 1,
    threshold: ThresholdOpt = None,
    max_false_positive_rate: FprOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Who is this? The best matches of the photo's central face in a collection ("unknown" when
    nobody passes the cut-off). Example: facesearch identify probe.jpg -c staff --top-k 3"""
    from facesearch.api.responses import IdentifyOut
    from facesearch.service import SearchOptions

    options = SearchOptions(top_k=top_k, threshold=threshold, max_false_positive_rate=max_false_positive_rate)
    svc = open_service(data_dir)
    try:
        data = read_photo(image, svc.settings.max_upload_bytes)
        r = svc.identify(collection, data, options)
    finally:
        svc.close()
    if as_json:
        print_json(IdentifyOut.of(r).model_dump(mode="json"))  # the HTTP API's shape
        return
    if not r.matches:
        cutoff = _rule_text(r.threshold_rule, r.threshold)
        typer.echo(f"Unknown: nobody among {r.searched} faces passes {cutoff}.")
    for m in r.matches:
        label = m.person.name or m.person.external_id
        typer.echo(f"{m.rank}. {label} ({m.person.external_id})  similarity {m.similarity:.3f}{_strength(m)}")
    typer.echo(_corrections_text(r.ambiguous, r.vetoed, r.unknown_id), nl=False)


def _corrections_text(ambiguous: Any, vetoed: int, unknown_id: str | None, indent: str = "") -> str:
    """Lines on what the corrections did to an answer (empty when nothing)."""
    out = []
    if ambiguous:
        who = ", ".join(f"{a.person.external_id} ({a.similarity:.3f})" for a in ambiguous)
        out.append(
            f"{indent}Ambiguous: {who} are recorded as different people and all match: "
            "the service cannot tell which one this is."
        )
    if vetoed:
        out.append(f"{indent}{vetoed} person(s) left out: this face was recorded as not being them.")
    if unknown_id:
        out.append(f"{indent}Remembered as unknown face {unknown_id} (facesearch unknowns clusters).")
    return "".join(line + "\n" for line in out)


@handle_errors
def identify_all(
    image: Annotated[Path, typer.Argument(help="a photo with one or more faces")],
    collection: CollectionOpt,
    top_k: Annotated[int, typer.Option("--top-k", help="matches per face, 1-100")] = 1,
    threshold: ThresholdOpt = None,
    max_false_positive_rate: FprOpt = None,
    min_face_size: Annotated[int, typer.Option(help="smallest face, in pixels")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (crops as base64)")] = False,
    data_dir: DataDir = None,
) -> None:
    """Who are all these people? Every face of the photo with its best match, or "unknown".
    Example: facesearch identify-all group.jpg -c staff --json"""
    from facesearch.api.responses import IdentifyAllOut
    from facesearch.service import IdentifyAllOptions

    options = IdentifyAllOptions(
        top_k=top_k,
        threshold=threshold,
        max_false_positive_rate=max_false_positive_rate,
        min_face_size=min_face_size,
    )
    svc = open_service(data_dir)
    try:
        data = read_photo(image, svc.settings.max_upload_bytes)
        r = svc.identify_all(collection, data, options)
    finally:
        svc.close()
    if as_json:
        print_json(IdentifyAllOut.of(r).model_dump(mode="json"))
        return
    found = sorted([*r.faces, *r.unrecognized], key=lambda f: (f.face.box.left, f.face.box.top))
    typer.echo(
        f"{len(found)} faces, {len(r.faces)} recognised; cut-off {_rule_text(r.threshold_rule, r.threshold)} "
        f"among {r.searched} faces"
    )
    for f in found:
        b = f.face.box
        where = f"face at ({b.left}, {b.top}) {b.width}x{b.height} px"
        if not f.matches:
            typer.echo(f"  {where}: unknown")
            typer.echo(_corrections_text((), f.vetoed, f.unknown_id, "    "), nl=False)
            continue
        m = f.matches[0]
        label = m.person.name or m.person.external_id
        sim = f"similarity {m.similarity:.3f}{_strength(m)}"
        typer.echo(f"  {where}: {label} ({m.person.external_id})  {sim}")
        typer.echo(_corrections_text(f.ambiguous, f.vetoed, None, "    "), nl=False)
