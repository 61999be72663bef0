"""CLI commands over the service (FaceSearch): collections, enrol, identify, persons."""

from __future__ import annotations

import json
import threading
import time
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
    stop: threading.Event = field(default_factory=threading.Event)  # Ctrl-C: finish what is in flight


#: Analysed photos written to SQL in one transaction (`FaceSearch.enroll_faces`): one commit per
#: batch instead of per photo (bench/enrol_cli.py). A batch is also written once its oldest photo
#: has waited BATCH_WAIT_S, so a slow folder still commits as it goes.
BATCH = 32
BATCH_WAIT_S = 1.0


@dataclass(frozen=True)
class _Photo:
    external_id: str
    path: Path


class _KnownPhotos:
    """The photo hashes already enrolled per external id, read once per person (by the analysis
    threads, so a re-run skips a photo before it is analysed)."""

    def __init__(self, svc: Any, collection: Any) -> None:
        self._svc, self._collection = svc, collection
        self._hashes: dict[str, set[str] | None] = {}
        self._lock = threading.Lock()

    def of(self, external_id: str) -> set[str] | None:
        with self._lock:
            if external_id in self._hashes:
                return self._hashes[external_id]
        found = self._svc.photo_hashes(self._collection, external_id)
        with self._lock:
            return self._hashes.setdefault(external_id, found)

    def person_existed(self, external_id: str) -> bool:
        with self._lock:
            return self._hashes.get(external_id) is not None


def _analyse(svc: Any, collection: Any, photo: _Photo, known: _KnownPhotos) -> Any:
    """The analysed face of one photo (NewFace), None when the person already has this photo, or
    the FaceSearchError that refuses it."""
    import hashlib

    try:
        data = read_photo(photo.path, svc.settings.max_upload_bytes)
        if hashlib.sha256(data).hexdigest() in (known.of(photo.external_id) or ()):
            return None
        return svc.analyse_photo(collection, data)
    except FaceSearchError as exc:
        return exc


class _Enrolment:
    """One `facesearch enroll` run: photos analysed in a thread pool (two in flight per worker
    process, so a worker never waits for SQL), written by the calling thread in batches. Only the
    calling thread touches the report and the counts (the pool's threads only analyse)."""

    def __init__(self, svc: Any, collection: Any, report: EnrolReport, tick: Any, threads: int) -> None:
        self.svc, self.collection, self.report, self.tick = svc, collection, report, tick
        self.threads = threads
        self.known = _KnownPhotos(svc, collection)
        self.batch: list[tuple[_Photo, Any]] = []
        self.batch_since = 0.0
        self.photos: dict[str, int] = {}  # photos per external id
        self.refused: dict[str, int] = {}  # refused photos per external id

    def run(self, photos: list[_Photo]) -> None:
        """Enrol every photo; on Ctrl-C (report.stop) finish the photos in flight and write them."""
        from collections import deque
        from concurrent.futures import Future, wait

        for photo in photos:
            self.photos[photo.external_id] = self.photos.get(photo.external_id, 0) + 1
        todo = iter(photos)
        pending: deque[tuple[_Photo, Future[Any]]] = deque()
        with ThreadPoolExecutor(max_workers=self.threads) as pool:

            def refill() -> None:
                while len(pending) < 2 * self.threads and not self.report.stop.is_set():
                    photo = next(todo, None)
                    if photo is None:
                        return
                    job = pool.submit(_analyse, self.svc, self.collection, photo, self.known)
                    pending.append((photo, job))

            try:
                refill()
                while pending:
                    photo, future = pending[0]
                    if self.batch and not future.done():  # commit what waits, if this takes long
                        left = BATCH_WAIT_S - (time.monotonic() - self.batch_since)
                        if not wait([future], timeout=max(0.0, left)).done:
                            self.write()
                    self.take(photo, future.result())
                    pending.popleft()
                    refill()
            except KeyboardInterrupt:
                self.report.stop.set()  # the photos in flight are finished and written
                for photo, future in pending:
                    if not future.cancel():
                        self.take(photo, future.result())
                raise
            finally:
                self.write()
        for external_id, n in self.photos.items():
            if self.refused.get(external_id, 0) == n:  # every photo refused: nothing stored
                if not self.known.person_existed(external_id):
                    self.report.not_enrolled.append(external_id)

    def take(self, photo: _Photo, result: Any) -> None:
        """One analysed photo: queued for the next batch, or settled now (skipped, refused)."""
        if result is None or isinstance(result, FaceSearchError):
            self.settle(photo, result)
            return
        if not self.batch:
            self.batch_since = time.monotonic()
        self.batch.append((photo, result))
        if len(self.batch) >= BATCH:
            self.write()

    def settle(self, photo: _Photo, outcome: Any) -> None:
        """Count a photo's outcome and tick: None skipped (already enrolled), a FaceSearchError
        refused, anything else a stored face."""
        if outcome is None:
            self.report.skipped += 1
        elif isinstance(outcome, FaceSearchError):
            self.refuse(photo, outcome)
        else:
            self.report.enrolled += 1
        self.tick()

    def refuse(self, photo: _Photo, exc: FaceSearchError) -> None:
        reason = str(exc.details.get("reason", exc.message))
        self.refused[photo.external_id] = self.refused.get(photo.external_id, 0) + 1
        self.report.refused.append((str(photo.path), exc.code, reason))

    def write(self) -> None:
        """Commit the queued faces in one transaction (a person is created at its first face)."""
        from facesearch.storage import PersonFace

        if not self.batch:
            return
        batch, self.batch = self.batch, []
        items = [PersonFace(p.external_id, p.external_id.replace("_", " "), face) for p, face in batch]
        for (photo, _), done in zip(batch, self.svc.enroll_faces(self.collection, items), strict=True):
            self.settle(photo, done)


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
    photos = [
        _Photo(p.name, f)
        for p in people
        for f in sorted(f for f in p.iterdir() if f.suffix.lower() in PHOTO_SUFFIXES)
    ]
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
            task = progress.add_task("enrol", total=len(photos))

            def tick() -> None:
                progress.advance(task)

            try:
                _Enrolment(svc, coll, report, tick, threads=n_workers * 2).run(photos)
            except KeyboardInterrupt:
                interrupted = True
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
