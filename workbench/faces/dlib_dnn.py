"""dlib's serialized networks, read without dlib and run as ONNX graphs on onnxruntime.

Why: the ``dlib-bin`` wheel is built without BLAS, so its networks run on dlib's own CPU kernels: the
MMOD face detector ~1 s on a 640 px photo, the face descriptor ~50 ms a face, on this 2-core box.
onnxruntime runs the same weights 4-25x faster. The file format follows dlib's stream serialization
(dlib 19.x-20.x, Boost licence): integers as a length byte plus little-endian bytes, floats as mantissa
and exponent, tensors as raw float32. Anything unexpected raises ``DlibFormatError``, and the callers
then use dlib's own networks.
"""

from __future__ import annotations

import math
import os

import numpy as np


class DlibFormatError(ValueError):
    """The file is not the dlib network the reader expects."""


class Reader:
    """dlib's stream serialization: the primitives its network files use."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def int(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def string(self) -> str:
        size = self.int()
        text = self.data[self.pos:self.pos + size].decode("latin-1")
        self.pos += size
        return text

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise DlibFormatError(f"unknown tensor version at byte {self.pos}")
        shape = [self.int() for _ in range(4)]
        count = math.prod(shape)
        if self.pos + 4 * count > len(self.data):
            raise DlibFormatError("tensor runs past the end of the file")
        values = np.frombuffer(self.data, "<f4", count, self.pos).reshape(shape)
        self.pos += 4 * count
        return values

    def alias_shape(self) -> list[int]:
        self.int()  # alias_tensor version
        return [self.int() for _ in range(4)]


def folded_conv(kernel: np.ndarray, bias: np.ndarray, gain: np.ndarray,
                shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A convolution followed by a per-channel affine map (dlib's affine_, or bn_ at inference) as one."""
    return kernel * gain[:, None, None, None], bias * gain + shift


def conv_node(nodes: list, weights: list, source: str, name: str, kernel: np.ndarray, bias: np.ndarray,
              stride: int, pad: int) -> str:
    from onnx import helper, numpy_helper

    weights += [numpy_helper.from_array(np.ascontiguousarray(kernel, np.float32), f"{name}_w"),
                numpy_helper.from_array(np.ascontiguousarray(bias, np.float32), f"{name}_b")]
    nodes.append(helper.make_node("Conv", [source, f"{name}_w", f"{name}_b"], [name],
                                  kernel_shape=list(kernel.shape[2:]), strides=[stride, stride], pads=[pad] * 4))
    return name


def session(nodes: list, weights: list, inputs: list, outputs: list, name: str, threads: int | None):
    """An onnxruntime CPU session for the graph; ``threads`` intra-op threads (default: OMP_NUM_THREADS
    when set, which the face workers set to their share of the cores; else onnxruntime's own choice)."""
    import onnxruntime
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = onnxruntime.SessionOptions()
    threads = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
