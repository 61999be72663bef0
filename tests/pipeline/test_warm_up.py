"""Worker processes load their models at start-up (ProcessAnalyzer warm), not on the first photo."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesearch.pipeline import build_pack
from facesearch.pipeline.analyzer import AnalyseRequest, ProcessAnalyzer, _worker_packs
from facesearch.pipeline.dlib_pack import DlibModels

pytestmark = pytest.mark.realmodel


def test_warm_up_loads_and_runs_every_model() -> None:
    pack = build_pack("dlib")
    models = pack.detector._models  # type: ignore[attr-defined]
    assert isinstance(models, DlibModels) and models._loaded is None
    pack.warm_up()
    assert models._loaded is not None


def test_warm_workers_have_built_the_pack_before_any_photo() -> None:
    analyzer = ProcessAnalyzer(2, warm=("dlib",))
    try:
        analyzer.wait_started(timeout=120)
        seen = [analyzer._pool.submit(_worker_packs).result(timeout=60) for _ in range(4)]
        assert all(packs == ("dlib",) for _, packs in seen)
    finally:
        analyzer.close()


def test_cold_workers_build_nothing_until_asked() -> None:
    analyzer = ProcessAnalyzer(1)
    try:
        assert analyzer._pool.submit(_worker_packs).result(timeout=60)[1] == ()
    finally:
        analyzer.close()


def test_a_pack_that_cannot_warm_up_does_not_break_the_pool(faces_dir: Path) -> None:
    analyzer = ProcessAnalyzer(1, warm=("no-such-pack",))
    try:
        analyzer.wait_started(timeout=120)
        photo = next(iter(sorted((faces_dir / "probes").glob("*.jpg"))))
        analysis = analyzer.analyse(
            AnalyseRequest(pack="dlib", data=photo.read_bytes(), max_bytes=10**7, max_pixels=10**8)
        )
        assert len(analysis.faces) == 1
    finally:
        analyzer.close()
