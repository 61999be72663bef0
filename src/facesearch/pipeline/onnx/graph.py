"""Rewrites of the installed ONNX graphs, made in memory when a session is created.

The files on disk stay as installed (their sha256 is checked against the manifest); what
onnxruntime runs is an equivalent graph that is faster on this CPU, with the same outputs to the
last bit (tests/pipeline/test_onnx_graph.py runs both on random and real inputs):

- ``PRelu`` as ``Relu(x) + (slope / 2) * (x - |x|)``: onnxruntime's PRelu kernel with a per-channel
  slope is slow on x86 (MobileFaceNet-512: 9.0 ms a chip with its 33 PRelus, 5.1 ms rewritten, one
  thread, both sessions timed in one process); the elementwise form is what the 192-d graph
  converted from TensorFlow Lite already has. For x >= 0 the second term is exactly 0; for x < 0,
  x - |x| is exactly 2x, so the product is exactly slope * x.
- A fixed batch dimension made free (``free_batch``): the 192-d MobileFaceNet was converted with a
  batch of two, so one chip ran twice (10.3 ms); with a free batch one chip costs 5.3 ms.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unfuse_prelu(model: Any) -> int:
    """Replace every PRelu with a constant slope by its elementwise form; how many were replaced."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    nodes: list[Any] = []
    replaced = 0
    for node in graph.node:
        if node.op_type != "PRelu" or node.input[1] not in constants:
            nodes.append(node)
            continue
        x, slope = node.input
        y = node.output[0]
        half = numpy_helper.to_array(constants[slope]).astype(np.float32) * np.float32(0.5)
        half_name = f"{y}__half_slope"
        graph.initializer.append(numpy_helper.from_array(half, half_name))
        nodes += [
            helper.make_node("Relu", [x], [f"{y}__relu"]),
            helper.make_node("Abs", [x], [f"{y}__abs"]),
            helper.make_node("Sub", [x, f"{y}__abs"], [f"{y}__neg2"]),
            helper.make_node("Mul", [half_name, f"{y}__neg2"], [f"{y}__neg"]),
            helper.make_node("Add", [f"{y}__relu", f"{y}__neg"], [y]),
        ]
        replaced += 1
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
    return replaced


def free_batch(model: Any) -> bool:
    """Make a graph with one input and a fixed batch take any batch: the first dimension of its
    input and outputs becomes symbolic, and a constant Reshape to ``(batch, n)`` becomes ``(-1, n)``.
    False (and nothing changed) when the batch is already free or the graph is not of that shape."""
    from onnx import numpy_helper

    graph = model.graph
    if len(graph.input) != 1:
        return False
    first = graph.input[0].type.tensor_type.shape.dim[0]
    if not first.HasField("dim_value") or first.dim_value <= 1:
        return False
    batch = first.dim_value
    constants = {init.name: init for init in graph.initializer}
    reshapes = []
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in constants:
            shape = numpy_helper.to_array(constants[node.input[1]])
            if shape.ndim == 1 and len(shape) == 2 and shape[0] == batch:
                reshapes.append((node.input[1], shape))
    if len(reshapes) != 1:
        return False
    name, shape = reshapes[0]
    constants[name].CopyFrom(numpy_helper.from_array(np.array([-1, shape[1]], dtype=shape.dtype), name))
    for value in (*graph.input, *graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    return True


def rewritten(path: str, *, batch: bool = False) -> bytes | str:
    """The serialised graph to run for the model file at ``path``: rewritten as above, or the path
    itself when there was nothing to rewrite (onnxruntime then reads the file)."""
    import onnx

    model = onnx.load(path)
    changed = unfuse_prelu(model) > 0
    if batch:
        changed = free_batch(model) or changed
    if not changed:
        return path
    data: bytes = model.SerializeToString()
    return data
