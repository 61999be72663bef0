"""The dlib pack on real photos from ../shared/faces."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from onnx_helpers import labelled_boxes, lfw_pairs

from facesearch.errors import ModelUnavailable, NoFaceDetected
from facesearch.pipeline import FacePipeline
from facesearch.pipeline.dlib_pack import DlibModels

pytestmark = pytest.mark.realmodel


def test_group_photos_find_labelled_faces(faces_dir: Path, dlib_pipeline: FacePipeline) -> None:
    labelled = labelled_boxes(faces_dir)
    found = total = 0
    for path, boxes in labelled.items():
        analysis = dlib_pipeline.analyse_bytes(path.read_bytes(), every_face=True)
        detected = [f.detection.box for f in analysis.faces]
        found += sum(any(d.iou(b) >= 0.3 for d in detected) for b in boxes)
        total += len(boxes)
    print(f"labelled faces found: {found}/{total}")
    assert total == 18
    assert found / total >= 0.9


@pytest.mark.parametrize("name", ["fr_two_people.jpg", "fr_kit_with_rose.jpg"])
def test_two_face_photos(faces_dir: Path, dlib_pipeline: FacePipeline, name: str) -> None:
    analysis = dlib_pipeline.analyse_bytes((faces_dir / "groups" / name).read_bytes(), every_face=True)
    assert len(analysis.faces) == 2


def test_no_face_in_noface_photos(faces_dir: Path, dlib_pipeline: FacePipeline) -> None:
    photos = sorted((faces_dir / "noface").glob("*.jpg"))
    assert len(photos) == 5
    for path in photos:
        with pytest.raises(NoFaceDetected):
            dlib_pipeline.analyse_bytes(path.read_bytes(), every_face=True)
        with pytest.raises(NoFaceDetected):
            dlib_pipeline.analyse_bytes(path.read_bytes())


def _gallery(faces_dir: Path) -> list[tuple[str, Path]]:
    items = [(p.parent.name, p) for p in sorted((faces_dir / "people").glob("*/*")) if p.is_file()]
    names = {n for n, _ in items}
    for p in sorted((faces_dir / "probes").glob("*.jpg")):
        owner = next(n for n in names if p.stem.startswith(n))
        items.append((owner, p))
    return items


def test_same_person_pairs_closer_than_different(faces_dir: Path, dlib_pipeline: FacePipeline) -> None:
    items = _gallery(faces_dir)
    vecs = [dlib_pipeline.analyse_bytes(p.read_bytes()).faces[0].embedding for _, p in items]
    same, diff = [], []
    for (i, (na, _)), (j, (nb, _)) in itertools.combinations(enumerate(items), 2):
        d = float(np.linalg.norm(vecs[i] - vecs[j]))
        (same if na == nb else diff).append(d)
    print(f"same max {max(same):.3f}, different min {min(diff):.3f}")
    assert len(same) >= 8 and len(diff) >= 40
    assert max(same) < min(diff)


def test_central_face_of_lfw_photo_is_chosen(faces_dir: Path, dlib_pipeline: FacePipeline) -> None:
    # A photo of the LFW split with background faces: the labelled one is nearest the centre.
    path = next(iter(sorted((faces_dir / "lfw").glob("*/*.jpg"))))
    analysis = dlib_pipeline.analyse_bytes(path.read_bytes())
    box = analysis.faces[0].detection.box
    cx, cy = box.center
    assert abs(cx - 125) < 40 and abs(cy - 125) < 40


def test_crop_mode_embeds_a_tight_crop(faces_dir: Path, dlib_pipeline: FacePipeline) -> None:
    from facesearch.imaging import crop_face, decode_image, encode_jpeg

    data = (faces_dir / "people" / "obama" / "obama.jpg").read_bytes()
    full = dlib_pipeline.analyse_bytes(data).faces[0]
    b = full.detection.box
    crop = crop_face(decode_image(data).pixels, b.left, b.top, b.width, b.height, margin=0.0, output_size=120)
    cropped = dlib_pipeline.analyse_bytes(encode_jpeg(crop), crop=True).faces[0]
    assert float(np.linalg.norm(cropped.embedding - full.embedding)) < 0.4


def test_mirrored_face_flips_yaw_sign(faces_dir: Path, dlib_pipeline: FacePipeline) -> None:
    from facesearch.imaging import decode_image

    turned = 0
    for path in sorted((faces_dir / "people").glob("*/*")):
        pixels = decode_image(path.read_bytes(), target_max_side=1024)
        a = dlib_pipeline.analyse(pixels.pixels).faces[0].quality.yaw
        b = dlib_pipeline.analyse(np.ascontiguousarray(pixels.pixels[:, ::-1])).faces[0].quality.yaw
        if abs(a) > 5:
            turned += 1
            assert np.sign(a) == -np.sign(b), (path, a, b)
    assert turned >= 3


def test_missing_model_files_name_the_package(tmp_path: Path) -> None:
    from facesearch.pipeline.dlib_pack import DlibEmbedder

    with pytest.raises(ModelUnavailable) as info:
        DlibEmbedder(DlibModels(tmp_path)).embed([np.zeros((150, 150, 3), np.uint8)])
    assert "face-recognition-models" in info.value.message


@pytest.mark.slow
def test_lfw_dev_pairs_accuracy_at_fixed_threshold(faces_dir: Path, embedding_cache: object) -> None:
    from embedworker import EmbeddingCache
    from facesearch.pipeline import build_pack

    assert isinstance(embedding_cache, EmbeddingCache)
    pairs = lfw_pairs(faces_dir)
    assert len(pairs) == 1000
    vecs = embedding_cache.get_many(sorted({p for a, b, _ in pairs for p in (a, b)}))
    failures = sum(v is None for v in vecs.values())
    # The single fixed decision point of the pack: its default threshold (calibrated similarity 1/3,
    # a false-match rate of 1e-2 per comparison, about distance 0.61), converted to a distance.
    pack = build_pack("dlib")
    limit = pack.distance_for_similarity(pack.default_threshold)
    correct = 0
    for a, b, same in pairs:
        va, vb = vecs[a], vecs[b]
        # A photo with no detected face cannot match: the pair is judged "different".
        predicted_same = va is not None and vb is not None and float(np.linalg.norm(va - vb)) <= limit
        correct += predicted_same == same
    accuracy = correct / len(pairs)
    print(
        f"LFW dev pairs: accuracy {accuracy:.4f} at the default threshold (similarity "
        f"{pack.default_threshold}, distance {limit:.3f}); {failures} photos without a face"
    )
    assert accuracy >= 0.98
