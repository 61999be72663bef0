"""Liveness with the real ONNX models: genuine LFW photos and simulated attacks."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from onnx_helpers import lfw_pairs, need_models

from facesearch.config import Settings
from facesearch.errors import LivenessFailed
from facesearch.service import FaceSearch

pytestmark = pytest.mark.realmodel
REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    """bench/liveness.py, which makes the simulated attacks."""
    spec = importlib.util.spec_from_file_location("bench_liveness", REPO / "bench" / "liveness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    need_models()
    return _bench()


@pytest.fixture(scope="module")
def onnx_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceSearch]:
    need_models()
    svc = FaceSearch(Settings(data_dir=tmp_path_factory.mktemp("live"), default_pack="onnx", workers=0))
    svc.create_collection("staff", pack="onnx")
    yield svc
    svc.close()


def test_genuine_photo_passes_and_screen_attack_fails(
    faces_dir: Path, bench: ModuleType, onnx_service: FaceSearch
) -> None:
    photo = faces_dir / "lfw" / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
    if not photo.is_file():
        photo = sorted((faces_dir / "lfw").glob("*/*.jpg"))[0]
    result = onnx_service.identify("staff", photo.read_bytes(), check_liveness=True)
    assert result.matches == () and "liveness_ms" in result.timings
    with pytest.raises(LivenessFailed) as info:
        onnx_service.identify("staff", bench.make_image(photo, "screen"), check_liveness=True)
    assert info.value.details["reason"] == "FACE_NOT_LIVE"
    assert info.value.details["faces"][0]["scores"]["live"] < 0.5


def test_dlib_pack_uses_the_onnx_liveness(faces_dir: Path, bench: ModuleType, tmp_path: Path) -> None:
    svc = FaceSearch(Settings(data_dir=tmp_path, workers=0))
    try:
        svc.create_collection("staff")  # the dlib pack
        photo = faces_dir / "people" / "obama" / "obama.jpg"
        svc.detect(photo.read_bytes(), check_liveness=True)
        with pytest.raises(LivenessFailed):
            svc.detect(bench.make_image(photo, "screen"), check_liveness=True)
    finally:
        svc.close()


@pytest.mark.slow
def test_liveness_on_a_sample_of_lfw(faces_dir: Path, bench: ModuleType) -> None:
    """Every 20th LFW dev photo and its simulated attacks (the full figures: bench/liveness.py)."""
    from facesearch.pipeline.liveness import DEFAULT_THRESHOLDS
    from facesearch.pipeline.onnx.models import OnnxModels

    photos = sorted({p for a, b, _ in lfw_pairs(faces_dir) for p in (a, b)})[::20]
    measurer = bench.Measurer(OnnxModels())
    rows = {kind: [measurer.measure(bench.make_image(p, kind)) for p in photos] for kind in bench.KINDS}
    summary = bench.summarise(rows, "bgr", DEFAULT_THRESHOLDS.min_live_score)
    print({kind: (s["passed"], s["reasons"]) for kind, s in summary.items()})
    assert summary["genuine"]["passed"] >= 0.7
    assert summary["print"]["refused"] >= 0.7
    assert summary["screen"]["refused"] >= 0.9
