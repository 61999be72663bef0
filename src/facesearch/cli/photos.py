"""`facesearch detect` and `facesearch verify`: the service's detect and verify on photo files,
with the HTTP API's fields under ``--json`` (``detection_score``, ``match``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facesearch.cli.common import DataDir, JsonOpt, handle_errors, print_json, read_photo

PackOpt = Annotated[
    str | None, typer.Option(help="model pack (default: the server's, the most accurate installed)")
]


def _timing_note(timings: dict[str, float]) -> str:
    load = timings.get("load_ms")
    return f" (models loaded in {load / 1000:.1f} s first)" if load else ""


@handle_errors
def detect(
    image: Annotated[Path, typer.Argument(help="photo to scan (JPEG, PNG or WebP)")],
    min_face_size: Annotated[int, typer.Option(help="smallest face, in pixels")] = 32,
    max_faces: Annotated[int, typer.Option(help="at most this many faces, largest first, 1-1000")] = 100,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """List every face in a photo with its box, landmarks, detection score and quality.
    Example: facesearch detect groups/fr_two_people.jpg --json"""
    from facesearch.api.responses import DetectOut
    from facesearch.cli.common import with_service
    from facesearch.service import DetectOptions

    options = DetectOptions(min_face_size=min_face_size, max_faces=max_faces)

    def work(svc: Any) -> Any:
        return svc.detect(read_photo(image, svc.settings.max_upload_bytes), options, pack=pack)

    found = with_service(data_dir, work)
    if as_json:
        print_json({"image": str(image), **DetectOut.of(found, 0.0).model_dump(mode="json")})
        return
    smallest = f"faces of {found.smallest_face_size} px and more"
    if not found.faces:
        typer.echo(f"No face found in {image} (looked for {smallest}){_timing_note(found.timings)}.")
        return
    n = len(found.faces)
    typer.echo(f"{n} face{'s' if n != 1 else ''} in {image} ({smallest}){_timing_note(found.timings)}:")
    for i, f in enumerate(found.faces, 1):
        b, q = f.box, f.quality
        typer.echo(
            f"  {i}. box left={b.left} top={b.top} width={b.width} height={b.height}"
            f"  detection_score={f.score:.2f}  yaw={q.yaw:+.0f}  pitch={q.pitch:+.0f}"
            f"  sharpness={q.sharpness:.0f}  brightness={q.brightness:.0f}"
            f"{'  CUT OFF' if q.cut_off else ''}"
        )


@handle_errors
def verify(
    image_a: Annotated[Path, typer.Argument(help="a photo")],
    image_b: Annotated[Path | None, typer.Argument(help="a second photo (or give --person)")] = None,
    person: Annotated[
        str | None, typer.Option(help="compare with this person's enrolled faces instead (id or external id)")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="the person's collection")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="similarity needed for a match, 0-1")] = None,
    pack: PackOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Same person? Two photos' main faces, or a photo against an enrolled person (1:1).
    Example: facesearch verify a.jpg b.jpg, or facesearch verify a.jpg --person obama -c staff"""
    from facesearch.api.responses import VerifyOut
    from facesearch.cli.common import with_service
    from facesearch.service import VerifyOptions

    def work(svc: Any) -> Any:
        limit = svc.settings.max_upload_bytes
        b = read_photo(image_b, limit) if image_b is not None else None
        return svc.verify(
            read_photo(image_a, limit),
            b,
            VerifyOptions(threshold=threshold),
            collection=collection,
            person=person,
            pack=pack if person is None else None,
        )

    r = with_service(data_dir, work)
    if as_json:
        print_json(VerifyOut.of(r).model_dump(mode="json"))
        return
    verdict = "match: same person" if r.match else "no match: different people"
    typer.echo(
        f"{verdict}; similarity {r.similarity:.3f} (threshold {r.threshold:.3f}), "
        f"distance {r.distance:.3f}{_timing_note(r.timings)}"
    )
