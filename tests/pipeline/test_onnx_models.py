"""The ONNX models' contracts, alignment, detection and pose on real photos."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from onnx_helpers import labelled_boxes, need_models

from facesearch.domain import Detection, Landmarks
from facesearch.errors import NoFaceDetected
from facesearch.imaging import decode_image
from facesearch.pipeline import FacePipeline, build_pack
from facesearch.pipeline.onnx.align import (
    REFERENCE_112,
    align_112,
    alignment_points,
    similarity_transform,
    warp,
)
from facesearch.pipeline.onnx.detect import FIVE_FROM_68, OnnxDetection, RfbDetector, nms
from facesearch.pipeline.onnx.models import OnnxModels

# --- no models needed ------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_similarity() -> None:
    angle, scale, shift = math.radians(17), 2.3, np.array([40.0, -12.0])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = (REFERENCE_112 - shift) @ np.linalg.inv(scale * rot).T  # so that src -> REFERENCE_112
    m = similarity_transform(src, REFERENCE_112)
    assert np.allclose(src @ m[:, :2].T + m[:, 2], REFERENCE_112, atol=1e-9)
    assert np.allclose(m[:, :2], scale * rot, atol=1e-9)


def test_similarity_transform_never_shears() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        src = REFERENCE_112 + rng.normal(0, 6, size=(5, 2))
        a = similarity_transform(src, REFERENCE_112)[:, :2]
        # A similarity's 2x2 part is s * rotation: equal column norms, orthogonal columns.
        assert abs(np.linalg.norm(a[:, 0]) - np.linalg.norm(a[:, 1])) < 1e-9
        assert abs(a[:, 0] @ a[:, 1]) < 1e-9
        assert np.linalg.det(a) > 0


def test_reference_points_are_the_standard_112_template() -> None:
    assert REFERENCE_112.shape == (5, 2)
    assert np.allclose(REFERENCE_112[0], [38.2946, 51.6963]) and np.allclose(
        REFERENCE_112[4], [70.7299, 92.2041]
    )
    # The eyes are level and the face is centred on x = 56.
    assert abs(REFERENCE_112[0, 1] - REFERENCE_112[1, 1]) < 0.5
    assert abs((REFERENCE_112[0, 0] + REFERENCE_112[1, 0]) / 2 - 56) < 0.2


def test_warp_puts_points_where_the_transform_says() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[95:106, 145:156] = 255  # a white dot at (150, 100)
    m = similarity_transform(
        np.array([[150.0, 100.0], [250.0, 100.0]]), np.array([[30.0, 40.0], [80.0, 40.0]])
    )
    chip = warp(image, m, 112)
    ys, xs = np.nonzero(chip[..., 0] > 128)
    assert abs(xs.mean() - 30) < 1.0 and abs(ys.mean() - 40) < 1.0


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=float)
    assert nms(boxes, np.array([0.9, 0.95, 0.8]), 0.4) == [1, 2]


def test_68_to_5_mapping_is_dlibs_order() -> None:
    # subject's left eye outer, inner (image right), right eye outer, inner, nose base
    assert FIVE_FROM_68 == (45, 42, 36, 39, 33)


# --- the installed models --------------------------------------------------------------


@pytest.fixture(scope="module")
def models() -> OnnxModels:
    need_models()
    return OnnxModels()


@pytest.fixture(scope="module")
def onnx_pipeline(models: OnnxModels) -> FacePipeline:
    return FacePipeline(build_pack("onnx"))


CONTRACTS = {
    "detect": ((1, 3, 240, 320), [(1, 4420, 2), (1, 4420, 4)]),
    "landmark": ((1, 1, 64, 64), [(1, 136)]),
    "feature": ((1, 3, 112, 112), [(1, 512)]),
    "liveness": ((1, 3, 128, 128), [(1, 3)]),
    "eye": ((1, 1, 24, 24), [(1, 2)]),
    "pose": ((1, 3, 224, 224), [(1, 66), (1, 66), (1, 66)]),
}


@pytest.mark.realmodel
@pytest.mark.parametrize("role", sorted(CONTRACTS))
def test_model_input_output_contract(models: OnnxModels, role: str) -> None:
    shape, outputs = CONTRACTS[role]
    session = models.session(role)
    (inp,) = session.get_inputs()
    assert tuple(inp.shape) == shape and inp.type == "tensor(float)"
    assert [tuple(o.shape) for o in session.get_outputs()] == outputs
    assert all(o.type == "tensor(float)" for o in session.get_outputs())
    result = models.run(role, np.zeros(shape, np.float32))
    assert [r.shape for r in result] == outputs and all(r.dtype == np.float32 for r in result)
    if role == "detect":  # (background, face) probabilities and corner boxes in [0, 1]
        assert np.allclose(result[0].sum(axis=2), 1.0, atol=1e-4)


@pytest.mark.realmodel
def test_landmarks_match_dlibs_five_points(
    faces_dir: Path, models: OnnxModels, dlib_pipeline: FacePipeline
) -> None:
    detector = RfbDetector(models)
    errors = []
    for path in sorted((faces_dir / "people").glob("*/*")):
        pixels = decode_image(path.read_bytes(), target_max_side=1024).pixels
        ours = detector.detect(pixels, upsample=0)
        theirs = dlib_pipeline.pack.detector.detect(pixels, upsample=0)
        if not ours or not theirs:
            continue
        a, b = max(ours, key=lambda d: d.box.area), max(theirs, key=lambda d: d.box.area)
        iod = np.linalg.norm(np.subtract(b.landmarks.points[0], b.landmarks.points[2]))
        diff = np.linalg.norm(np.subtract(a.landmarks.points, b.landmarks.points), axis=1) / iod
        errors.append(diff.max())
    print(f"largest point difference to dlib, in inter-ocular distances: {max(errors):.3f}")
    assert len(errors) >= 7 and max(errors) < 0.2


@pytest.mark.realmodel
def test_alignment_puts_the_face_on_the_reference(faces_dir: Path, models: OnnxModels) -> None:
    detector = RfbDetector(models)
    path = faces_dir / "people" / "obama" / "obama.jpg"
    pixels = decode_image(path.read_bytes(), target_max_side=1024).pixels
    (face,) = detector.detect(pixels, upsample=0)
    assert isinstance(face, OnnxDetection) and len(face.points68) == 68
    points = np.asarray(face.points68)
    chip = align_112(pixels, points)
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    # The least-squares similarity puts the face's 5 points close to the reference.
    m = similarity_transform(alignment_points(points), REFERENCE_112)
    mapped = alignment_points(points) @ m[:, :2].T + m[:, 2]
    err = np.linalg.norm(mapped - REFERENCE_112, axis=1)
    print(f"aligned points off the reference by {err.round(1).tolist()} pixels (112x112 chip)")
    assert err[:3].max() < 4 and err.max() < 8  # mouths vary most (a smile widens them)
    # The chip holds that face: the detector finds it again, centred, on a grey canvas.
    canvas = np.full((336, 336, 3), 128, np.uint8)
    canvas[112:224, 112:224] = chip
    again = detector.detect(canvas, upsample=0)
    assert len(again) == 1 and abs(again[0].box.center[0] - 168) < 10


@pytest.mark.realmodel
def test_detection_on_groups_at_least_as_good_as_hog(
    faces_dir: Path, onnx_pipeline: FacePipeline, dlib_pipeline: FacePipeline
) -> None:
    found = {"onnx": 0, "dlib": 0}
    total = 0
    for path, boxes in labelled_boxes(faces_dir).items():
        total += len(boxes)
        for name, pipeline in (("onnx", onnx_pipeline), ("dlib", dlib_pipeline)):
            analysis = pipeline.analyse_bytes(path.read_bytes(), every_face=True)
            detected = [f.detection.box for f in analysis.faces]
            found[name] += sum(any(d.iou(b) >= 0.3 for d in detected) for b in boxes)
    print(f"labelled faces found (IoU >= 0.3): onnx {found['onnx']}/{total}, HOG {found['dlib']}/{total}")
    assert total == 18 and found["onnx"] >= found["dlib"]


@pytest.mark.realmodel
@pytest.mark.parametrize("name,count", [("fr_two_people.jpg", 2), ("fr_kit_with_rose.jpg", 2)])
def test_two_face_photos(faces_dir: Path, onnx_pipeline: FacePipeline, name: str, count: int) -> None:
    analysis = onnx_pipeline.analyse_bytes((faces_dir / "groups" / name).read_bytes(), every_face=True)
    assert len(analysis.faces) == count


@pytest.mark.realmodel
def test_no_face_in_noface_photos(faces_dir: Path, onnx_pipeline: FacePipeline) -> None:
    for path in sorted((faces_dir / "noface").glob("*.jpg")):
        with pytest.raises(NoFaceDetected):
            onnx_pipeline.analyse_bytes(path.read_bytes(), every_face=True)


@pytest.mark.realmodel
def test_embeddings_are_unit_length_and_separate_people(faces_dir: Path, onnx_pipeline: FacePipeline) -> None:
    items = [(p.parent.name, p) for p in sorted((faces_dir / "people").glob("*/*"))]
    vecs = [onnx_pipeline.analyse_bytes(p.read_bytes()).faces[0].embedding for _, p in items]
    assert all(
        v.shape == (512,) and v.dtype == np.float32 and abs(np.linalg.norm(v) - 1) < 1e-4 for v in vecs
    )
    same, diff = [], []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (same if items[i][0] == items[j][0] else diff).append(float(np.linalg.norm(vecs[i] - vecs[j])))
    print(f"same max {max(same):.3f}, different min {min(diff):.3f}")
    assert max(same) < min(diff)


@pytest.mark.realmodel
def test_fusion_embedding_is_unit_length_640(faces_dir: Path, models: OnnxModels) -> None:
    pipeline = FacePipeline(build_pack("fusion"))
    face = pipeline.analyse_bytes((faces_dir / "people" / "biden" / "biden.jpg").read_bytes()).faces[0]
    assert face.embedding.shape == (640,) and abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-4
    assert face.chip.shape == (150, 150, 3)


@pytest.mark.realmodel
def test_crop_mode_embeds_a_tight_crop(faces_dir: Path, onnx_pipeline: FacePipeline) -> None:
    from facesearch.imaging import crop_face, encode_jpeg

    data = (faces_dir / "people" / "obama" / "obama.jpg").read_bytes()
    full = onnx_pipeline.analyse_bytes(data).faces[0]
    b = full.detection.box
    crop = crop_face(decode_image(data).pixels, b.left, b.top, b.width, b.height, margin=0.0, output_size=160)
    cropped = onnx_pipeline.analyse_bytes(encode_jpeg(crop), crop=True).faces[0]
    distance = float(np.linalg.norm(cropped.embedding - full.embedding))
    print(f"crop mode vs full photo: distance {distance:.3f}")
    assert distance < 0.6


@pytest.mark.realmodel
def test_plain_detection_is_aligned_too(faces_dir: Path, models: OnnxModels) -> None:
    pack = build_pack("onnx")
    pixels = decode_image(
        (faces_dir / "people" / "biden" / "biden.jpg").read_bytes(), target_max_side=1024
    ).pixels
    (face,) = pack.detector.detect(pixels, upsample=0)
    plain = Detection(box=face.box, score=face.score, landmarks=Landmarks(face.landmarks.points))
    a = pack.embed_one(pack.aligner.align(pixels, face))
    b = pack.embed_one(pack.aligner.align(pixels, plain))
    assert float(np.linalg.norm(a - b)) < 1e-3


@pytest.mark.realmodel
@pytest.mark.slow
def test_pose_sanity_on_mirrored_photos(faces_dir: Path, models: OnnxModels) -> None:
    """The yaw used for FACE_ANGLE_TOO_LARGE (landmark geometry) flips sign on mirrored
    photos; the package's pose head is measured too, and not used because it does not."""
    from onnx_helpers import lfw_pairs

    from facesearch.pipeline.liveness import pose_head_yaw
    from facesearch.pipeline.quality import pose_from_landmarks

    detector = RfbDetector(models)
    photos = sorted({p for a, b, _ in lfw_pairs(faces_dir) for p in (a, b)})[::4]
    geometry, head = [], []
    for path in photos:
        pixels = decode_image(path.read_bytes()).pixels
        mirrored = np.ascontiguousarray(pixels[:, ::-1])
        a, b = detector.detect(pixels, upsample=0), detector.detect(mirrored, upsample=0)
        if not a or not b:
            continue
        fa = min(a, key=lambda d: abs(d.box.center[0] - 125) + abs(d.box.center[1] - 125))
        fb = min(b, key=lambda d: abs(d.box.center[0] - 125) + abs(d.box.center[1] - 125))
        geometry.append(
            (pose_from_landmarks(fa.landmarks.points)[0], pose_from_landmarks(fb.landmarks.points)[0])
        )
        head.append((pose_head_yaw(models, pixels, fa.box), pose_head_yaw(models, mirrored, fb.box)))

    def flips(pairs: list[tuple[float, float]]) -> tuple[float, int]:
        turned = [(a, b) for a, b in pairs if abs(a) > 15]
        return sum(np.sign(a) == -np.sign(b) for a, b in turned) / max(1, len(turned)), len(turned)

    g, n_g = flips(geometry)
    h, n_h = flips(head)
    print(
        f"yaw sign flips on mirrored photos (|yaw| > 15): landmarks {g:.1%} of {n_g}, "
        f"pose head {h:.1%} of {n_h}"
    )
    assert n_g >= 20 and g >= 0.9


@pytest.mark.realmodel
def test_dlib_pack_falls_back_to_the_onnx_detector_when_hog_finds_nothing(
    faces_dir: Path, models: OnnxModels
) -> None:
    """HOG misses this LFW photo; the dlib pack then asks the ONNX detector, and aligns with dlib."""

    path = faces_dir / "lfw" / "Luis_Horna" / "Luis_Horna_0002.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is not in this copy of the photos")
    pixels = decode_image(path.read_bytes()).pixels
    pack = build_pack("dlib")
    assert pack.detector.detect(pixels, upsample=1) == []
    assert pack.fallback_detector is not None
    (face,) = pack.fallback_detector.detect(pixels, upsample=0)
    assert abs(face.box.center[0] - 125) < 30 and abs(face.box.center[1] - 125) < 40
    assert not isinstance(face, OnnxDetection)  # dlib's own 5 points, for dlib's chip
    analysis = FacePipeline(pack).analyse_bytes(path.read_bytes())
    assert len(analysis.faces) == 1 and analysis.faces[0].embedding.shape == (128,)
    # A photo HOG handles never reaches the fallback: same embedding with and without it.
    photo = (faces_dir / "probes" / "obama1.jpg").read_bytes()
    with_fallback = FacePipeline(pack).analyse_bytes(photo).faces[0].embedding
    without = (
        FacePipeline(dataclasses.replace(pack, fallback_detector=None))
        .analyse_bytes(photo)
        .faces[0]
        .embedding
    )
    assert np.array_equal(with_fallback, without)


def test_fallback_detector_finds_nothing_without_the_models(tmp_path: Path) -> None:
    from facesearch.pipeline.dlib_pack import DlibModels
    from facesearch.pipeline.onnx_pack import optional_fallback_detector

    detector = optional_fallback_detector(DlibModels(), models_dir=tmp_path)
    assert detector.detect(np.zeros((100, 100, 3), np.uint8), upsample=0) == []
