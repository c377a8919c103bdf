"""dlib's 128-d face descriptor network (``dlib_face_recognition_resnet_model_v1.dat``) on onnxruntime.

Why: in the BLAS-less ``dlib-bin`` wheel ``compute_face_descriptor`` spends ~50 ms a face in the ResNet;
onnxruntime runs the same weights in a fraction of that. The input is dlib's own 150 px face chip
(``dlib.get_face_chip`` with the padding ``compute_face_descriptor`` uses), so alignment is dlib's;
only the network moves. Descriptors match dlib's to ~1e-6 (tested on the bundled photos).

The network is the one in dlib's ``dnn_face_recognition_ex.cpp``: a 7x7/2 stem and 3x3/2 max pool, then
residual blocks (conv, affine, relu, conv, affine, add, relu); a block that halves the size adds a 2x2
average pool of its input, and when the two sides differ in size dlib's ``add_prev`` zero-pads the
smaller (channels, and one row/column where 8 px halves to 3 and 4); then a global average and a
128 x 256 projection. It is read from the file's layer sequence and checked against that shape.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .dlib_dnn import DlibFormatError, Reader, conv_node, folded_conv, session

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # what dlib's compute_face_descriptor uses
_LAYER = re.compile(rb"\x01(\x05relu_|\x05con_4|\x07affine_|\x0amax_pool_2|\x0aavg_pool_2|\x09add_prev_|\x04fc_2)")


def _layers(data: bytes) -> list[tuple]:
    """The file's layers in input-to-output order, with their parameters."""
    layers = []
    for match in _LAYER.finditer(data):
        reader = Reader(data, match.start())
        tag = reader.string()
        if tag == "con_4":
            params = reader.tensor().ravel()
            _, rows, cols, stride, stride_x, pad, pad_x = (reader.int() for _ in range(7))
            shape = reader.alias_shape()
            if rows != cols or stride != stride_x or pad != pad_x or shape[2:] != [rows, cols]:
                raise DlibFormatError("non-square convolution")
            count = int(np.prod(shape))
            layers.append(("con", params[:count].reshape(shape), params[count:], stride, pad))
        elif tag == "affine_":
            params = reader.tensor().ravel()
            layers.append(("affine", params[:params.size // 2], params[params.size // 2:]))
        elif tag in ("max_pool_2", "avg_pool_2"):
            rows, cols, stride, stride_x, pad, pad_x = (reader.int() for _ in range(6))
            if rows != cols or stride != stride_x or pad or pad_x:
                raise DlibFormatError(f"unsupported {tag} {rows}x{cols}/{stride} pad {pad}")
            layers.append((tag[:3], rows, stride))
        elif tag == "fc_2":
            outputs, inputs = reader.int(), reader.int()
            params = reader.tensor().ravel()
            if params.size != outputs * inputs:
                raise DlibFormatError("fc layer with a bias (the descriptor's has none)")
            layers.append(("fc", params.reshape(inputs, outputs)))
        else:
            layers.append((tag.rstrip("_"),))
    return layers


def _graph(layers: list[tuple], threads: int | None):
    """The layer sequence as an ONNX graph, shapes tracked to place dlib's zero-padded additions."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, counter = [], [], iter(range(10_000))
    shape = [3, CHIP_SIZE, CHIP_SIZE]

    def name(kind: str) -> str:
        return f"{kind}{next(counter)}"

    def conv(source: str, index: int) -> tuple[str, int]:
        (kind, kernel, bias, stride, pad), affine = layers[index], layers[index + 1]
        if kind != "con" or affine[0] != "affine":
            raise DlibFormatError(f"expected a convolution and an affine at layer {index}")
        kernel, bias = folded_conv(kernel, bias, affine[1], affine[2])
        shape[:] = [kernel.shape[0], *((s + 2 * pad - kernel.shape[2]) // stride + 1 for s in shape[1:])]
        return conv_node(nodes, weights, source, name("conv"), kernel, bias, stride, pad), index + 2

    def unary(op: str, source: str, **attributes) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, [source], [out], **attributes))
        return out

    def padded(source: str, have: list[int], want: list[int]) -> str:
        if have == want:
            return source
        pads = name("pads")
        grow = [w - h for w, h in zip(want, have, strict=True)]  # at the end of each axis, as dlib's add
        weights.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, *grow], np.int64), pads))
        out = name("pad")
        nodes.append(helper.make_node("Pad", [source, pads], [out]))
        return out

    expect = [kind[0] for kind in layers]
    if expect[:4] != ["con", "affine", "relu", "max"] or expect[-2:] != ["avg", "fc"]:
        raise DlibFormatError("not dlib's face descriptor ResNet (stem or head differ)")
    current, index = conv("chip", 0)
    current = unary("Relu", current)
    _, size, stride = layers[3]
    current = unary("MaxPool", current, kernel_shape=[size, size], strides=[stride, stride])
    shape[1:] = [(s - size) // stride + 1 for s in shape[1:]]
    index = 4
    while layers[index][0] == "con":
        block_in, in_shape = current, list(shape)
        current, index = conv(current, index)
        if layers[index][0] != "relu":
            raise DlibFormatError(f"expected a relu at layer {index}")
        current, index = conv(unary("Relu", current), index + 1)
        skip, skip_shape = block_in, in_shape
        if layers[index][0] == "avg":
            _, size, stride = layers[index]
            skip = unary("AveragePool", block_in, kernel_shape=[size, size], strides=[stride, stride])
            skip_shape = [in_shape[0], *((s - size) // stride + 1 for s in in_shape[1:])]
            index += 1
        if layers[index][0] != "add_prev" or layers[index + 1][0] != "relu":
            raise DlibFormatError(f"expected a residual addition and a relu at layer {index}")
        out_shape = [max(a, b) for a, b in zip(shape, skip_shape, strict=True)]
        summed = name("add")
        nodes.append(helper.make_node("Add", [padded(current, shape, out_shape), padded(skip, skip_shape, out_shape)],
                                      [summed]))
        shape[:] = out_shape
        current, index = unary("Relu", summed), index + 2
    if layers[index][:2] != ("avg", 0) or index + 2 != len(layers):
        raise DlibFormatError("expected a global average and the projection at the end")
    projection = layers[-1][1]
    if projection.shape[0] != shape[0]:
        raise DlibFormatError("projection width does not match the last block")
    weights.append(numpy_helper.from_array(np.ascontiguousarray(projection, np.float32), "projection"))
    pooled = unary("Flatten", unary("GlobalAveragePool", current))
    nodes.append(helper.make_node("MatMul", [pooled, "projection"], ["descriptor"]))
    inputs = [helper.make_tensor_value_info("chip", TensorProto.FLOAT, ["faces", 3, CHIP_SIZE, CHIP_SIZE])]
    outputs = [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["faces", projection.shape[1]])]
    return session(nodes, weights, inputs, outputs, "dlib_face_descriptor", threads)


class DescriptorNet:
    """``net(chips)`` -> (n, 128) float32 descriptors for (n, 150, 150, 3) uint8 dlib face chips."""

    def __init__(self, path: str | Path, threads: int | None = None):
        data = Path(path).read_bytes()
        found = data.find(b"input_rgb_image_sized")
        if found < 0 or data.find(b"loss_metric_") < 0:
            raise DlibFormatError("no input_rgb_image_sized / loss_metric_ layer: not dlib's face descriptor")
        reader = Reader(data, found + len(b"input_rgb_image_sized"))
        self._mean = np.array([reader.float() for _ in range(3)], np.float32)
        if (reader.int(), reader.int()) != (CHIP_SIZE, CHIP_SIZE):
            raise DlibFormatError(f"expected {CHIP_SIZE} px chips")
        self._session = _graph(_layers(data), threads)

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected n x {CHIP_SIZE} x {CHIP_SIZE} x 3 chips, got shape {chips.shape}")
        tensor = ((chips.astype(np.float32) - self._mean) / 256.0).transpose(0, 3, 1, 2)
        return self._session.run(None, {"chip": np.ascontiguousarray(tensor)})[0]
