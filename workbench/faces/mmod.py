"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``) run by onnxruntime.

Why: the ``dlib-bin`` wheel is built without BLAS, so its CNN detector spends ~1.1 s on a 640 px photo
on this 2-core box, and it is the fallback every photo without a frontal face pays (no-face photos,
profiles, steep pitch). This module reads the same weights from dlib's file, writes the same network
as an ONNX graph and runs it on onnxruntime's CPU kernels: the network takes ~46 ms on one thread
(~24 ms on two) where dlib takes ~1 s, and the boxes are dlib's to the pixel, the scores to ~1e-5
(tested against dlib's own detector on the bundled photos; 204 photos and resizes checked).

What "the same" takes, following dlib's ``loss_mmod`` / ``input_rgb_image_pyramid<pyramid_down<6>>``
(dlib 19.x-20.x, Boost licence): the input is a tiled pyramid (levels 5/6 apart, each a bilinear resize
of the one above, 10 px apart and 11 px from the edge, background 0 after subtracting the mean colour
and dividing by 256); batch norm folds into the convolutions; a detection is every output cell above
the threshold, its 80 x 80 window mapped back through the convolutions and the pyramid level nearest
to it, then greedy non-maximum suppression with dlib's box-overlap test (intersection over the
*bounding box* of both, not their union).

The file is read by ``dlib_dnn``; anything unexpected raises ``DlibFormatError``, and the caller then
uses dlib's own detector.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .dlib_dnn import DlibFormatError, Reader, conv_node, folded_conv, session

PYRAMID_RATE = 5 / 6  # pyramid_down<6>: every level is 5/6 of the one above
MIN_LEVEL_HEIGHT = 5  # dlib stops the pyramid below this


def _parse(data: bytes) -> tuple[np.ndarray, tuple[int, int], float, list[tuple]]:
    """(mean colour, detection window (w, h), NMS IoU, [(weights, bias, stride, padding, relu)])."""
    start = data.find(b"loss_mmod_")
    if start < 0:
        raise DlibFormatError("no loss_mmod_ layer: not a dlib MMOD detector")
    options = Reader(data, start + len(b"loss_mmod_"))
    if options.int() != 1:
        raise DlibFormatError("unsupported mmod_options version (only the single-window version 1)")
    window = (options.int(), options.int())
    for _ in range(3):  # loss per false alarm, loss per miss, truth-match IoU: training only
        options.float()
    nms_iou, nms_covered = options.float(), options.float()
    if nms_covered < 1.0:
        raise DlibFormatError("unsupported NMS rule (covered-fraction test)")

    found = re.search(rb"\x01(\x17|\x18)input_rgb_image_pyramid2?", data)
    if found is None:
        raise DlibFormatError("no input_rgb_image_pyramid layer")
    pyramid = Reader(data, found.start())
    tag = pyramid.string()
    mean = np.array([pyramid.float() for _ in range(3)], np.float32)
    padding = (pyramid.int(), pyramid.int()) if tag.endswith("2") else (10, 11)
    if padding != (10, 11):
        raise DlibFormatError(f"unsupported pyramid padding {padding}")

    layers: list[list] = []
    for match in re.finditer(rb"\x01\x05con_4|\x01\x07bn_con2", data):
        reader = Reader(data, match.start())
        tag, params = reader.string(), reader.tensor().ravel()
        if tag == "con_4":
            _, rows, cols, stride, stride_x, pad, pad_x = (reader.int() for _ in range(7))
            shape = reader.alias_shape()
            if rows != cols or stride != stride_x or pad != pad_x or shape[2:] != [rows, cols]:
                raise DlibFormatError("non-square convolution")
            if layers and shape[1] != layers[-1][0].shape[0]:
                raise DlibFormatError("convolution channels do not chain")
            count = math.prod(shape)
            layers.append([params[:count].reshape(shape).copy(), params[count:].copy(), stride, pad, False])
        else:
            channels = params.size // 2
            reader.alias_shape(), reader.alias_shape()
            reader.tensor(), reader.tensor()  # batch statistics of the last training step
            running_mean, running_var = reader.tensor().ravel(), reader.tensor().ravel()
            reader.int(), reader.int()
            for _ in range(4):
                reader.float()
            eps = reader.float()
            if not layers or layers[-1][4] or layers[-1][0].shape[0] != channels:
                raise DlibFormatError("batch norm does not follow a convolution of its width")
            # dlib loads bn_con as affine_: gamma / sqrt(var + eps), beta - gamma' mean; then a relu.
            gain = params[:channels] / np.sqrt(running_var + eps)
            layers[-1][:2] = folded_conv(layers[-1][0], layers[-1][1], gain, params[channels:] - gain * running_mean)
            layers[-1][4] = True
    if not layers or layers[-1][0].shape[0] != 1 or layers[0][0].shape[1] != 3:
        raise DlibFormatError("expected an RGB input and a one-channel score map")
    if data.count(b"\x05relu_") != sum(layer[4] for layer in layers):
        raise DlibFormatError("expected a relu after every batch norm")
    return mean, window, nms_iou, [tuple(layer) for layer in layers]


class MMODDetector:
    """``detector(rgb, threshold)`` -> [((left, top, right, bottom), score)], best first, in pixels of
    ``rgb`` (uint8, H x W x 3) -- what ``dlib.cnn_face_detection_model_v1(path)(rgb, 0)`` returns."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        self._mean, self._window, self._nms_iou, self._layers = _parse(self.path.read_bytes())
        self._session = _session(self._layers, threads)

    def __call__(self, rgb: np.ndarray, threshold: float = 0.0) -> list[tuple[tuple[int, int, int, int], float]]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
            raise ValueError(f"expected an H x W x 3 RGB image, got shape {rgb.shape}")
        tensor, levels = self._tiled_pyramid(rgb)
        scores = self._scores(tensor)
        if scores.size == 0:
            return []
        rows, cols = np.nonzero(scores > threshold)
        order = np.argsort(-scores[rows, cols], kind="stable")
        rows, cols = rows[order], cols[order]
        boxes = self._boxes(rows, cols, levels)
        kept: list[tuple[tuple[int, int, int, int], float]] = []
        for box, score in zip(boxes, scores[rows, cols], strict=True):
            box = tuple(int(v) for v in box)
            if not any(self._overlaps(box, other) for other, _ in kept):
                kept.append((box, float(score)))
        return kept

    def _tiled_pyramid(self, rgb: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """dlib's tiled pyramid: levels as (left, top, width, height) in one tensor, level 0 the photo."""
        levels, tensor_rows, tensor_cols = _tile_levels(rgb.shape[0], rgb.shape[1])
        left, top, width, height = levels[0]
        tensor = np.zeros((3, tensor_rows, tensor_cols), np.float32)
        centred = (rgb.astype(np.float32) - self._mean) / 256.0
        tensor[:, top:top + height, left:left + width] = centred.transpose(2, 0, 1)
        for (pl, pt, pw, ph), (ll, lt, lw, lh) in zip(levels, levels[1:], strict=False):
            tensor[:, lt:lt + lh, ll:ll + lw] = _resize_bilinear(tensor[:, pt:pt + ph, pl:pl + pw], lh, lw)
        return tensor, levels

    def _scores(self, x: np.ndarray) -> np.ndarray:
        rows, cols = x.shape[1:]
        for weights, _, stride, pad, _ in self._layers:  # a map too small for a kernel: no detections
            rows = (rows + 2 * pad - weights.shape[2]) // stride + 1
            cols = (cols + 2 * pad - weights.shape[3]) // stride + 1
            if rows < 1 or cols < 1:
                return np.zeros((0, 0), np.float32)
        return self._session.run(None, {"pyramid": x[None]})[0][0, 0]

    def _boxes(self, rows: np.ndarray, cols: np.ndarray, levels: list) -> np.ndarray:
        """Output cells -> detection windows in photo pixels (dlib's rounding), one row per cell."""
        x, y = cols.astype(np.float64), rows.astype(np.float64)
        for weights, _, stride, pad, _ in reversed(self._layers):  # output -> input of each convolution
            x, y = x * stride - pad + weights.shape[3] // 2, y * stride - pad + weights.shape[2] // 2
        half_w, half_h = (self._window[0] - 1) / 2, (self._window[1] - 1) / 2
        boxes = np.stack([x - half_w, y - half_h, x + half_w, y + half_h], axis=1)
        # The level whose tile is nearest the window's centre (dlib's nearest_rect; centre rounded).
        cx, cy = np.floor(x + 0.5), np.floor(y + 0.5)
        tiles = np.array(levels, np.float64)
        near_x = np.clip(cx[:, None], tiles[:, 0], tiles[:, 0] + tiles[:, 2] - 1)
        near_y = np.clip(cy[:, None], tiles[:, 1], tiles[:, 1] + tiles[:, 3] - 1)
        level = np.argmin(np.hypot(near_x - cx[:, None], near_y - cy[:, None]), axis=1)
        boxes -= np.tile(tiles[level, :2], 2)
        for depth in range(1, len(levels)):  # pyramid_down<6>::point_up, once per level
            up = level >= depth
            boxes[up] = boxes[up] * (6 / 5) + 0.3  # dlib: p * (N / (N - 1.0)) + 0.3, bit for bit
        return np.sign(boxes) * np.floor(np.abs(boxes) + 0.5)  # halves away from zero, as dlib-bin 20 rounds

    def _overlaps(self, a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        """dlib's test_box_overlap: intersection over the bounding box of both (inclusive pixels)."""
        inner_w = min(a[2], b[2]) - max(a[0], b[0]) + 1
        inner_h = min(a[3], b[3]) - max(a[1], b[1]) + 1
        if inner_w <= 0 or inner_h <= 0:
            return False
        outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
        return inner_w * inner_h / outer > self._nms_iou


def _tile_levels(rows: int, cols: int, padding: int = 10,
                 outer: int = 11) -> tuple[list[tuple[int, int, int, int]], int, int]:
    """dlib's compute_tiled_image_pyramid_details: (levels as (left, top, width, height), tensor rows,
    tensor columns); a first column of levels, then the small ones stacked bottom-up beside them."""
    sizes = [(cols, rows)]
    while True:
        rows, cols = math.floor(PYRAMID_RATE * rows), math.floor(PYRAMID_RATE * cols)
        if rows * cols == 0 or rows < MIN_LEVEL_HEIGHT:
            break
        sizes.append((cols, rows))
    first_w, first_h = sizes[0]
    total = sum(h + padding for _, h in sizes) - 2 * padding
    height, previous_w = 0, 0
    for w, h in sizes:
        if w <= first_w - previous_w - padding and (height - first_h) * 2 >= total - first_h:
            break
        height += h + padding
        previous_w = w
    height -= padding
    levels, y, i = [], outer, 0
    while y < height + outer and i < len(sizes):
        levels.append((outer, y, *sizes[i]))
        y += sizes[i][1] + padding
        i += 1
    y -= padding
    while i < len(sizes):
        w, h = sizes[i]
        bottom = y - 1
        if bottom >= outer and bottom - h + 1 <= outer + first_h - 1:
            break  # it would overlap the photo itself (its right edge always lines up with the photo's)
        levels.append((outer + first_w - w, bottom - h + 1, w, h))
        y -= h + padding
        i += 1
    return levels, height + 2 * outer, first_w + 2 * outer


def _resize_bilinear(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's resize_image with bilinear interpolation: corners map to corners."""
    _, src_rows, src_cols = src.shape
    x = np.arange(cols) * ((src_cols - 1) / max(cols - 1, 1))
    y = np.arange(rows) * ((src_rows - 1) / max(rows - 1, 1))
    left, top = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    right, bottom = np.minimum(left + 1, src_cols - 1), np.minimum(top + 1, src_rows - 1)
    fx, fy = (x - left).astype(np.float32), (y - top).astype(np.float32)[:, None]
    upper, lower = src[:, top], src[:, bottom]
    upper = upper[:, :, left] * (1 - fx) + upper[:, :, right] * fx
    lower = lower[:, :, left] * (1 - fx) + lower[:, :, right] * fx
    return upper * (1 - fy) + lower * fy


def _session(layers: list[tuple], threads: int | None):
    """The convolutions (batch norm folded in) and relus as an ONNX graph."""
    from onnx import TensorProto, helper

    nodes, weights, current = [], [], "pyramid"
    for index, (kernel, bias, stride, pad, relu) in enumerate(layers):
        current = conv_node(nodes, weights, current, f"conv{index}", kernel, bias, stride, pad)
        if relu:
            nodes.append(helper.make_node("Relu", [current], [f"relu{index}"]))
            current = f"relu{index}"
    inputs = [helper.make_tensor_value_info("pyramid", TensorProto.FLOAT, [1, 3, "rows", "cols"])]
    outputs = [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, 1, "out_rows", "out_cols"])]
    return session(nodes, weights, inputs, outputs, "dlib_mmod_face_detector", threads)
