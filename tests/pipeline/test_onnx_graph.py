"""The in-memory rewrites of the ONNX graphs give the same outputs to the last bit, and a photo
analysed with two cores gets the same embedding as with one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesearch.pipeline.cores import cores, using
from facesearch.pipeline.onnx.graph import free_batch, rewritten, unfuse_prelu


def _session(model: object) -> object:
    import onnxruntime as ort

    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()  # type: ignore[attr-defined]
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _prelu_conv_model(batch: int | str = 1) -> object:
    """conv -> PRelu (per-channel slope) -> flatten-by-reshape to (batch, 4 * 6 * 6)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    slope = rng.uniform(0.05, 0.5, size=(4, 1, 1)).astype(np.float32)
    shape = np.array([batch if isinstance(batch, int) else -1, 4 * 6 * 6], dtype=np.int64)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("PRelu", ["c", "s"], ["p"]),
            helper.make_node("Reshape", ["p", "shape"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 144])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(slope, "s"),
            numpy_helper.from_array(shape, "shape"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(session: object, x: np.ndarray) -> np.ndarray:
    out: list[np.ndarray] = session.run(None, {"x": x})  # type: ignore[attr-defined]
    return out[0]


def test_prelu_rewritten_elementwise_gives_the_same_bits() -> None:
    model = _prelu_conv_model()
    before = _session(model)
    assert unfuse_prelu(model) == 1
    ops = [n.op_type for n in model.graph.node]  # type: ignore[attr-defined]
    assert "PRelu" not in ops and ops.count("Relu") == 1 and ops.count("Abs") == 1
    after = _session(model)
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(scale=3.0, size=(1, 3, 8, 8)).astype(np.float32)
        a, b = _run(before, x), _run(after, x)
        assert (a < 0).any() and (a > 0).any()  # both branches of the PRelu are exercised
        assert np.array_equal(a, b)


def test_a_fixed_batch_of_two_is_freed() -> None:
    model = _prelu_conv_model(batch=2)
    fixed = _session(model)
    assert free_batch(model)
    free = _session(model)
    rng = np.random.default_rng(3)
    pair = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    reference = _run(fixed, pair)
    assert np.array_equal(_run(free, pair[:1])[0], reference[0])
    three = np.concatenate([pair, pair[:1]])
    assert np.array_equal(_run(free, three), np.concatenate([reference, reference[:1]]))
    # Already free, or a graph of another shape: nothing is changed.
    assert not free_batch(model)
    assert not free_batch(_prelu_conv_model(batch=1))


def test_a_graph_with_nothing_to_rewrite_is_read_from_its_file(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert rewritten(str(path)) == str(path)
    prelu = tmp_path / "prelu.onnx"
    onnx.save(_prelu_conv_model(), str(prelu))  # type: ignore[arg-type]
    assert isinstance(rewritten(str(prelu)), bytes)


def test_cores_is_one_unless_set_and_restored_after() -> None:
    assert cores() == 1
    with using(2):
        assert cores() == 2
        with using(0):
            assert cores() == 1
        assert cores() == 2
    assert cores() == 1


@pytest.mark.realmodel
def test_installed_models_rewritten_give_the_same_bits() -> None:
    from embedworker import need_pack
    from facesearch.pipeline import retina_install as ri
    from facesearch.pipeline.models_install import MODEL_FILES, onnx_dir

    need_pack("retina")
    rng = np.random.default_rng(4)
    chip = rng.uniform(-1, 1, size=(1, 3, 112, 112)).astype(np.float32)
    feature = str(onnx_dir() / MODEL_FILES["feature"])
    a, b = _session(feature), _session(rewritten(feature))
    name = a.get_inputs()[0].name  # type: ignore[attr-defined]
    assert np.array_equal(a.run(None, {name: chip})[0], b.run(None, {name: chip})[0])  # type: ignore[attr-defined]
    m192 = str(ri.retina_dir() / ri.MODEL_FILES["feature192"])
    fixed, free = _session(m192), _session(rewritten(m192, batch=True))
    pair = np.concatenate([chip, rng.uniform(-1, 1, size=(1, 3, 112, 112)).astype(np.float32)])
    reference = fixed.run(None, {"input": pair})[0]  # type: ignore[attr-defined]
    assert np.array_equal(free.run(None, {"input": chip})[0][0], reference[0])  # type: ignore[attr-defined]


@pytest.mark.realmodel
def test_two_cores_give_the_same_embedding_as_one(faces_dir: Path) -> None:
    from embedworker import need_pack
    from facesearch.pipeline import FacePipeline, build_pack

    need_pack("retina")
    pipeline = FacePipeline(build_pack("retina"))
    data = (faces_dir / "groups" / "dlib_2008_001322.jpg").read_bytes()
    one = pipeline.analyse_bytes(data, every_face=True)
    with using(2):
        two = pipeline.analyse_bytes(data, every_face=True)
    assert len(one.faces) >= 2 and len(one.faces) == len(two.faces)
    for a, b in zip(one.faces, two.faces, strict=True):
        assert np.array_equal(a.embedding, b.embedding)


def test_network_inputs_made_plane_by_plane_are_the_same_bits() -> None:
    from facesearch.pipeline.onnx.retina import BGR_MEAN, bgr_planes
    from facesearch.pipeline.onnx.tensors import planes

    rng = np.random.default_rng(5)
    chips = [rng.integers(0, 256, size=(112, 96, 3), dtype=np.uint8) for _ in range(3)]
    whole = (np.stack([c.astype(np.float32) for c in chips]) - 127.5) / 128.0
    assert np.array_equal(planes(chips, (0, 1, 2), 127.5, 128.0), whole.transpose(0, 3, 1, 2))
    bgr = (chips[0].astype(np.float32)[..., ::-1] - 127.0) / 128.0
    assert np.array_equal(planes(chips[0], (2, 1, 0), 127.0, 128.0), bgr.transpose(2, 0, 1)[None])
    crop = chips[1]
    expected = (np.asarray(crop, dtype=np.float32)[..., ::-1] - BGR_MEAN).transpose(2, 0, 1)[None]
    assert np.array_equal(bgr_planes(crop), expected)
