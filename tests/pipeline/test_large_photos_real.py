"""#15.7: every face of photos far bigger than the 1024-pixel work size, with the real ONNX pack.

Before, every photo was shrunk to 1024 pixels before detection: a 6000x4000 photo's 48-pixel
faces measured 8 pixels and were never found, and a 20000x500 panorama became 1024x26 with no
face left. Photos are built from LFW faces pasted on a real background at known places
(``facesearch.eval.composite``); ``bench/large_photos.py`` measures the same photos and cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from embedworker import need_models
from facesearch.config import Settings
from facesearch.eval.composite import Composite, compose, pick_faces
from facesearch.service import FaceSearch

pytestmark = pytest.mark.realmodel


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceSearch]:
    need_models()
    service = FaceSearch(Settings(data_dir=tmp_path_factory.mktemp("large"), default_pack="onnx", workers=0))
    yield service
    service.close()


def _photo(faces_dir: Path, width: int, height: int, face_px: float) -> Composite:
    six = pick_faces(faces_dir / "lfw", 6, seed=7)
    return compose(faces_dir / "noface" / "skimage_coffee.jpg", six, width, height, face_px)


def _boxes(faces: object) -> list[tuple[float, float, float, float]]:
    return [(f.box.left, f.box.top, f.box.width, f.box.height) for f in faces]  # type: ignore[attr-defined]


def test_small_faces_of_a_6000x4000_photo_are_found(svc: FaceSearch, faces_dir: Path) -> None:
    photo = _photo(faces_dir, 6000, 4000, 48)
    found = svc.detect(photo.jpeg)
    assert photo.found(_boxes(found.faces)) == (6, 0)
    assert found.smallest_face_size == 32  # the default min_face_size, honoured


def test_a_panorama_keeps_its_faces_in_identify_all(svc: FaceSearch, faces_dir: Path) -> None:
    photo = _photo(faces_dir, 20000, 500, 200)
    svc.create_collection("pano")
    result = svc.identify_all("pano", photo.jpeg)
    assert photo.found(_boxes(f.face for f in result.unrecognized)) == (6, 0)
    assert result.faces == () and result.smallest_face_size == 32


def test_an_answer_says_when_the_photo_is_too_large_to_scan_that_finely(
    svc: FaceSearch, faces_dir: Path
) -> None:
    photo = _photo(faces_dir, 6000, 4000, 180)
    found = svc.detect(photo.jpeg, min_face_size=8)  # 8-px faces over 24 MP: beyond the scan budget
    assert found.smallest_face_size is not None and 8 < found.smallest_face_size <= 32
    assert photo.found(_boxes(found.faces)) == (6, 0)
