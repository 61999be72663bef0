"""`facesearch detect` and `facesearch compare`: the pipeline on photos, no store needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from facesearch.cli.common import JsonOpt, handle_errors, print_json, read_photo
from facesearch.config import Settings
from facesearch.domain import FaceObservation
from facesearch.pipeline import FacePipeline, build_pack


def face_dict(face: FaceObservation) -> dict[str, Any]:
    """A detected face as plain JSON-able data."""
    d = face.detection
    return {
        "box": d.box.to_dict(),
        "score": round(d.score, 3),
        "landmarks": d.landmarks.to_list(),
        "quality": face.quality.to_dict(),
    }


@handle_errors
def detect(
    image: Annotated[Path, typer.Argument(help="photo to scan (JPEG, PNG or WebP)")],
    as_json: JsonOpt = False,
    pack: Annotated[str, typer.Option(help="model pack")] = "dlib",
    min_face_size: Annotated[int, typer.Option(help="smallest face, in pixels")] = 32,
) -> None:
    """List every face in a photo with its box, landmarks, score and quality."""
    settings = Settings()
    pipeline = FacePipeline(build_pack(pack))
    data = read_photo(image, settings.max_upload_bytes)
    from facesearch.errors import NoFaceDetected

    try:
        analysis = pipeline.analyse_bytes(
            data,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            every_face=True,
            min_face_size=min_face_size,
        )
        faces = list(analysis.faces)
    except NoFaceDetected:
        faces = []
        analysis = None
    if as_json:
        print_json(
            {
                "image": str(image),
                "faces": [face_dict(f) for f in faces],
                "timings": analysis.timings.to_dict() if analysis else {},
            }
        )
        return
    if not faces:
        typer.echo(f"No face found in {image}.")
        return
    typer.echo(f"{len(faces)} face{'s' if len(faces) != 1 else ''} in {image}:")
    for i, f in enumerate(faces, 1):
        b, q = f.detection.box, f.quality
        typer.echo(
            f"  {i}. box left={b.left} top={b.top} width={b.width} height={b.height}"
            f"  score={f.detection.score:.2f}  yaw={q.yaw:+.0f}  pitch={q.pitch:+.0f}"
            f"  sharpness={q.sharpness:.0f}  brightness={q.brightness:.0f}"
            f"{'  CUT OFF' if q.cut_off else ''}"
        )


@handle_errors
def compare(
    image_a: Annotated[Path, typer.Argument(help="first photo")],
    image_b: Annotated[Path, typer.Argument(help="second photo")],
    as_json: JsonOpt = False,
    pack: Annotated[str, typer.Option(help="model pack")] = "dlib",
    threshold: Annotated[float | None, typer.Option(help="similarity needed for 'same person'")] = None,
) -> None:
    """Say whether the main faces of two photos are the same person."""
    settings = Settings()
    model_pack = build_pack(pack)
    pipeline = FacePipeline(model_pack)
    faces = []
    for path in (image_a, image_b):
        data = read_photo(path, settings.max_upload_bytes)
        analysis = pipeline.analyse_bytes(
            data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels
        )
        faces.append(analysis.faces[0])
    distance = float(np.linalg.norm(faces[0].embedding - faces[1].embedding))
    similarity = model_pack.similarity(distance)
    limit = model_pack.default_threshold if threshold is None else threshold
    same = similarity >= limit
    if as_json:
        print_json(
            {
                "distance": round(distance, 4),
                "similarity": round(similarity, 4),
                "threshold": limit,
                "same_person": same,
                "faces": [face_dict(f) for f in faces],
            }
        )
        return
    verdict = "same person" if same else "different people"
    typer.echo(f"{verdict}: similarity {similarity:.3f} (threshold {limit}), distance {distance:.3f}")
