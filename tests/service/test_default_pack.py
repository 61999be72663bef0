"""The default model pack: the most accurate installed one (retina, else onnx), dlib only without
the ONNX models."""

from __future__ import annotations

from pathlib import Path

from facesearch.config import PackConfig, Settings
from facesearch.pipeline import retina_install
from facesearch.pipeline.models_install import MODEL_FILES
from facesearch.pipeline.packs import BEST_PACK, NEXT_BEST_PACK, best_installed_pack, resolve_pack_name
from facesearch.service import FaceSearch
from fakes import fake_pack


def fake_install(models_dir: Path, *, retina: bool = False) -> None:
    sets = [("onnx", MODEL_FILES.values())]
    if retina:
        sets.append((retina_install.PACK_SUBDIR, retina_install.MODEL_FILES.values()))
    for sub, names in sets:
        folder = models_dir / sub
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes(b"not really a model")


def test_auto_is_retina_then_onnx_when_installed_else_dlib(tmp_path: Path) -> None:
    assert (BEST_PACK, NEXT_BEST_PACK) == ("retina", "onnx")
    assert best_installed_pack(PackConfig(models_dir=tmp_path / "none")) == "dlib"
    fake_install(tmp_path / "m")
    assert best_installed_pack(PackConfig(models_dir=tmp_path / "m")) == "onnx"
    assert resolve_pack_name("auto", PackConfig(models_dir=tmp_path / "m")) == "onnx"
    assert resolve_pack_name("fusion", PackConfig(models_dir=tmp_path / "none")) == "fusion"
    fake_install(tmp_path / "r", retina=True)
    assert resolve_pack_name("auto", PackConfig(models_dir=tmp_path / "r")) == "retina"
    # The retina models alone are not enough: the pack also runs the npm pack's detector.
    (tmp_path / "r" / "onnx" / next(iter(MODEL_FILES.values()))).unlink()
    assert best_installed_pack(PackConfig(models_dir=tmp_path / "r")) == "dlib"


def test_settings_default_to_auto_and_the_service_resolves_it(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).default_pack == "auto"
    packs = {"dlib": fake_pack("dlib"), "onnx": fake_pack("onnx")}
    bare = FaceSearch(Settings(data_dir=tmp_path / "a", models_dir=tmp_path / "none"), packs=packs)
    try:
        assert bare.default_pack == "dlib" and bare.create_collection("staff").pack == "dlib"
    finally:
        bare.close()
    fake_install(tmp_path / "m")
    full = FaceSearch(Settings(data_dir=tmp_path / "b", models_dir=tmp_path / "m"), packs=packs)
    try:
        assert full.default_pack == "onnx" and full.create_collection("staff").pack == "onnx"
        assert full.create_collection("old", pack="dlib").pack == "dlib"  # an explicit choice stays
    finally:
        full.close()
