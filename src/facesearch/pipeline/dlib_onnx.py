"""dlib's face descriptor network, read from its own weights file and run by onnxruntime.

``dlib_face_recognition_resnet_model_v1.dat`` (PyPI ``face-recognition-models``) holds a
29-layer ResNet (dlib's ``dnn_face_recognition_ex.cpp``). dlib-bin runs it on one core in
about 60 ms per face; the same weights in an ONNX graph run in a fraction of that, with
the same descriptor to about 1e-6 (tests/pipeline/test_dlib_onnx.py compares the two on
real chips). Nothing is downloaded: the graph is built in memory from the installed file.

The file is dlib's serialisation of the network. Each ``add_layer`` writes its version,
then its sub-network, then its own layer's details, so the details appear from the input
layer outwards. Integers are dlib's compact form (a byte whose low nibble is the number
of little-endian magnitude bytes that follow and whose bit 7 is the sign), strings are a
length and bytes, tensors (version 2) are four dimensions and raw little-endian float32.
Only what the forward pass needs is read; every other byte is skipped by the scanner,
which looks for the next layer name only where no tensor data can be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.errors import ModelUnavailable

CHIP = 150
# The layers of the descriptor network, in the order their details are written.
_NAME = re.compile(
    rb"\x01([\x04-\x15])(con_4|affine_|relu_|max_pool_2|avg_pool_2|add_prev_|fc_2|input_rgb_image_sized)"
)


class DlibFormatError(ValueError):
    """The weights file is not the network this module knows."""


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def integer(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise DlibFormatError("tensor runs past the end of the file")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos = end
        return values.astype(np.float32)


@dataclass
class Layer:
    """One layer's details as the file gives them."""

    kind: str
    params: np.ndarray | None = None
    ints: tuple[int, ...] = ()
    reals: tuple[float, ...] = ()


def read_layers(data: bytes) -> list[Layer]:
    """The layers of the file, input first."""
    reader = _Reader(data)
    layers: list[Layer] = []
    while True:
        found = _NAME.search(data, reader.pos)
        if found is None:
            break
        kind = found.group(2).decode()
        if found.group(1)[0] != len(found.group(2)):
            reader.pos = found.start() + 1
            continue
        reader.pos = found.end()
        if kind == "input_rgb_image_sized":
            layers.append(Layer(kind, reals=(reader.real(), reader.real(), reader.real())))
        elif kind == "con_4":
            params = reader.tensor()
            ints = tuple(reader.integer() for _ in range(7))  # filters, nr, nc, stride y/x, padding y/x
            layers.append(Layer(kind, params=params, ints=ints))
        elif kind == "affine_":
            layers.append(Layer(kind, params=reader.tensor()))
        elif kind in ("max_pool_2", "avg_pool_2"):
            layers.append(Layer(kind, ints=tuple(reader.integer() for _ in range(6))))
        elif kind == "fc_2":
            outputs, inputs = reader.integer(), reader.integer()
            layers.append(Layer(kind, params=reader.tensor(), ints=(outputs, inputs)))
        else:
            layers.append(Layer(kind))
    return layers


@dataclass
class _Graph:
    """ONNX nodes and weights built up layer by layer, with every tensor's static shape."""

    nodes: list[Any] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)
    shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    count: int = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def weight(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, int, int], **attrs: Any) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.shapes[out] = shape
        return out

    def pad_to(self, x: str, shape: tuple[int, int, int]) -> str:
        """Zero-pad channels and the bottom/right edge up to ``shape`` (dlib's add_prev)."""
        k, r, c = self.shapes[x]
        if (k, r, c) == shape:
            return x
        pads = np.array([0, 0, 0, 0, 0, shape[0] - k, shape[1] - r, shape[2] - c], dtype=np.int64)
        return self.node("Pad", [x, self.weight("pads", pads)], shape)


def _pooled(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


def build_model(layers: list[Layer]) -> Any:
    """The ONNX model: input ``chip`` float32 (N, 3, 150, 150) already normalised (see
    ``normalise``), output ``descriptor`` (N, 128). Conv and the affine after it are folded."""
    from onnx import TensorProto, helper

    kinds = [layer.kind for layer in layers]
    if not kinds or kinds[0] != "input_rgb_image_sized" or kinds[-1] != "fc_2":
        raise DlibFormatError(f"unexpected layer sequence: {kinds[:3]} ... {kinds[-3:]}")
    g = _Graph()
    x = "chip"
    g.shapes[x] = (3, CHIP, CHIP)
    # Residual bookkeeping: a stride-2 conv opens a down block whose shortcut is the input
    # average-pooled; a stride-1 conv after a ReLU opens an identity block.
    block_input: str | None = None
    shortcut: str | None = None
    i = 1
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con_4":
            assert layer.params is not None
            filters, nr, nc, sy, sx, py, px = layer.ints
            k_in = g.shapes[x][0]
            flat = layer.params.reshape(-1)
            w = flat[: filters * k_in * nr * nc].reshape(filters, k_in, nr, nc)
            b = flat[filters * k_in * nr * nc : filters * k_in * nr * nc + filters]
            if flat.size != w.size + filters:
                shape_text = f"{filters}x{k_in}x{nr}x{nc}"
                raise DlibFormatError(f"conv params of size {flat.size} do not fit {shape_text}")
            if i + 1 >= len(layers) or layers[i + 1].kind != "affine_":
                raise DlibFormatError("a conv without its affine layer")
            affine = layers[i + 1].params
            assert affine is not None
            gamma, beta = affine.reshape(-1)[:filters], affine.reshape(-1)[filters:]
            w = w * gamma[:, None, None, None]
            b = b * gamma + beta
            if block_input is None and x != "chip":  # the first conv of a block
                block_input = x
            _, r, c = g.shapes[x]
            shape = (filters, _pooled(r, nr, sy, py), _pooled(c, nc, sx, px))
            x = g.node(
                "Conv",
                [x, g.weight("w", w), g.weight("b", b)],
                shape,
                kernel_shape=[nr, nc],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            i += 2
            continue
        if layer.kind == "relu_":
            x = g.node("Relu", [x], g.shapes[x])
        elif layer.kind == "max_pool_2":
            nr, nc, sy, sx, py, px = layer.ints
            k, r, c = g.shapes[x]
            shape = (k, _pooled(r, nr, sy, py), _pooled(c, nc, sx, px))
            x = g.node("MaxPool", [x], shape, kernel_shape=[nr, nc], strides=[sy, sx], pads=[py, px, py, px])
        elif layer.kind == "avg_pool_2":
            nr, nc, sy, sx, py, px = layer.ints
            if nr == 0 and nc == 0:  # avg_pool_everything
                k = g.shapes[x][0]
                x = g.node("GlobalAveragePool", [x], (k, 1, 1))
            else:
                # The shortcut of a down block: the block's input, average-pooled.
                if block_input is None:
                    raise DlibFormatError("an average pool with no block input")
                k, r, c = g.shapes[block_input]
                shape = (k, _pooled(r, nr, sy, py), _pooled(c, nc, sx, px))
                shortcut = g.node(
                    "AveragePool",
                    [block_input],
                    shape,
                    kernel_shape=[nr, nc],
                    strides=[sy, sx],
                    pads=[py, px, py, px],
                )
        elif layer.kind == "add_prev_":
            other = shortcut if shortcut is not None else block_input
            if other is None:
                raise DlibFormatError("a residual add with nothing to add")
            a, s = g.shapes[x], g.shapes[other]
            shape = (max(a[0], s[0]), max(a[1], s[1]), max(a[2], s[2]))
            x = g.node("Add", [g.pad_to(x, shape), g.pad_to(other, shape)], shape)
            shortcut = None
            block_input = None
        elif layer.kind == "fc_2":
            assert layer.params is not None
            outputs, inputs = layer.ints
            row = g.node("Flatten", [x], (g.shapes[x][0], 1, 1), axis=1)
            fc = g.weight("fc", layer.params.reshape(inputs, outputs))
            x = g.node("MatMul", [row, fc], (outputs, 1, 1))
        else:
            raise DlibFormatError(f"layer {layer.kind} not expected here")
        i += 1
    if g.shapes[x][0] != 128:
        raise DlibFormatError(f"the network ends in {g.shapes[x][0]} values, not 128")
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chip", TensorProto.FLOAT, ["n", 3, CHIP, CHIP])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", 128])],
        g.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def channel_means(layers: list[Layer]) -> np.ndarray:
    """The input layer's mean red, green and blue."""
    return np.array(layers[0].reals, dtype=np.float32)


def normalise(chips: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 RGB chips -> (N, 3, 150, 150) float32 as dlib feeds its net."""
    x = (chips.astype(np.float32) - means) / 256.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class DlibOnnxDescriptor:
    """dlib's descriptor network in an onnxruntime session, built from the weights file."""

    def __init__(self, weights: Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ModelUnavailable(
                "onnxruntime is not installed", details={"package": "onnxruntime"}
            ) from exc
        layers = read_layers(weights.read_bytes())
        self.means = channel_means(layers)
        model = build_model(layers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self._output = self._session.get_outputs()[0].name

    def compute(self, chips: np.ndarray) -> np.ndarray:
        """Descriptors (N, 128) of (N, 150, 150, 3) uint8 RGB chips."""
        (out,) = self._session.run([self._output], {"chip": normalise(chips, self.means)})
        return np.asarray(out, dtype=np.float32)
