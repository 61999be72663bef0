"""dlib's descriptor network rebuilt for onnxruntime (pipeline/dlib_onnx.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from facesearch.errors import ModelUnavailable
from facesearch.pipeline import dlib_onnx
from facesearch.pipeline.dlib_pack import DESCRIPTOR_MODEL, ENGINE_ENV, DlibModels, models_dir


def _int(value: int) -> bytes:
    """dlib's compact integer form."""
    magnitude = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little") if value else b""
    return bytes([len(magnitude) | (0x80 if value < 0 else 0)]) + magnitude


@pytest.mark.parametrize("value", [0, 1, 2, 127, 128, 256, 65_535, -1, -28, -300, 2**40])
def test_integers_read_as_dlib_writes_them(value: int) -> None:
    assert dlib_onnx._Reader(_int(value)).integer() == value


def test_reals_are_mantissa_and_exponent() -> None:
    # 0.04 and 0.6 as they open the real weights file (loss_metric_ margin and threshold).
    data = bytes.fromhex("030ad7a3811c039a99998118")
    reader = dlib_onnx._Reader(data)
    assert reader.real() == pytest.approx(0.04, abs=1e-7)
    assert reader.real() == pytest.approx(0.6, abs=1e-7)
    assert reader.pos == len(data)


def test_tensor_reads_shape_and_little_endian_floats() -> None:
    values = np.arange(6, dtype="<f4")
    data = _int(2) + b"".join(_int(v) for v in (1, 2, 3, 1)) + values.tobytes() + b"rest"
    reader = dlib_onnx._Reader(data)
    tensor = reader.tensor()
    assert tensor.shape == (1, 2, 3, 1)
    assert tensor.reshape(-1).tolist() == values.tolist()
    assert data[reader.pos :] == b"rest"


def test_truncated_tensor_and_unknown_version_are_format_errors() -> None:
    short = _int(2) + b"".join(_int(v) for v in (1, 1, 1, 4)) + b"\x00" * 8
    with pytest.raises(dlib_onnx.DlibFormatError, match="past the end"):
        dlib_onnx._Reader(short).tensor()
    with pytest.raises(dlib_onnx.DlibFormatError, match="version 1"):
        dlib_onnx._Reader(_int(1) + _int(1)).tensor()


def test_a_file_that_is_not_the_descriptor_network_is_refused() -> None:
    with pytest.raises(dlib_onnx.DlibFormatError, match="unexpected layer sequence"):
        dlib_onnx.build_model(dlib_onnx.read_layers(b"not a dlib network"))


def test_unknown_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "gpu")
    with pytest.raises(ModelUnavailable, match="FACESEARCH_DLIB_ENGINE"):
        DlibModels().get()


# --- the real weights --------------------------------------------------------------------------


def _chips(faces_dir: Path, count: int) -> np.ndarray:
    dlib, detector, predictor, _ = DlibModels().get()
    from PIL import Image

    chips = []
    for path in sorted((faces_dir / "lfw").glob("*/*.jpg"))[: count * 2]:
        image = np.asarray(Image.open(path).convert("RGB"))
        rects = detector(image, 0)
        if rects:
            chip = dlib.get_face_chip(image, predictor(image, rects[0]), size=150, padding=0.25)
            chips.append(np.asarray(chip, dtype=np.uint8))
        if len(chips) == count:
            break
    return np.stack(chips)


@pytest.mark.realmodel
def test_real_weights_read_as_the_published_architecture() -> None:
    layers = dlib_onnx.read_layers((models_dir() / DESCRIPTOR_MODEL).read_bytes())
    kinds = [layer.kind for layer in layers]
    assert kinds.count("con_4") == 29 and kinds.count("affine_") == 29 and kinds.count("relu_") == 29
    assert kinds.count("add_prev_") == 14 and kinds.count("fc_2") == 1
    assert dlib_onnx.channel_means(layers) == pytest.approx([122.782, 117.001, 104.298], abs=1e-3)


@pytest.mark.realmodel
def test_onnx_descriptor_equals_dlibs_own(faces_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chips = _chips(faces_dir, 24)
    monkeypatch.setenv(ENGINE_ENV, "dlib")
    _, _, _, own = DlibModels().get()
    monkeypatch.setenv(ENGINE_ENV, "onnxruntime")
    _, _, _, onnx = DlibModels().get()
    assert own.engine == "dlib" and isinstance(onnx, dlib_onnx.DlibOnnxDescriptor)

    timings: dict[str, list[float]] = {"dlib": [], "onnxruntime": []}
    expected, got = [], []
    for chip in chips:
        for name, engine, rows in (("dlib", own, expected), ("onnxruntime", onnx, got)):
            start = time.perf_counter()
            rows.append(engine.compute(chip[None])[0])
            timings[name].append(time.perf_counter() - start)
    batch = onnx.compute(chips)
    diff = float(np.abs(np.stack(expected) - np.stack(got)).max())
    ms = {name: 1000 * float(np.median(t)) for name, t in timings.items()}
    print(
        f"dlib descriptor, {len(chips)} LFW chips: max |onnxruntime - dlib| = {diff:.2e}; "
        f"median per face dlib {ms['dlib']:.1f} ms, onnxruntime {ms['onnxruntime']:.1f} ms "
        f"({ms['dlib'] / ms['onnxruntime']:.1f}x)"
    )
    assert diff < 1e-4
    assert np.abs(batch - np.stack(got)).max() < 1e-5  # a batch gives each chip's own descriptor
    assert ms["onnxruntime"] < ms["dlib"]
