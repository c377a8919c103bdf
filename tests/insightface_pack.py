"""A miniature insightface model pack made from torch modules exported to ONNX, with the real packs'
input/output signatures: an SCRFD-shaped detector (9 outputs, strides 8/16/32, 2 anchors, key points),
an ArcFace-shaped recognizer (112 px in, 512-d out) and a 1k3d68-shaped landmark model (192 px in,
3309 out). The detector's stride-8 score is the mean brightness of each cell, so a bright spot on a
dark image is "a face" at a known place; the test can then check the decoding arithmetic."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

BOX_HALF = 4.0  # stride-8 units: boxes are 64 det-px wide
KEYPOINTS = ((-1.5, -1.0), (1.5, -1.0), (0.0, 0.5), (-1.0, 2.0), (1.0, 2.0))


class Detector(nn.Module):
    def forward(self, x):
        brightness = x.mean(1, keepdim=True)
        scores, boxes, points = [], [], []
        for stride in (8, 16, 32):
            cells = F.avg_pool2d(brightness, stride).flatten(1).transpose(0, 1)  # (HW, 1)
            cells = torch.repeat_interleave(cells, 2, dim=0)
            on = cells.clamp(0, 1) * (1.0 if stride == 8 else 0.0)
            scores.append(on)
            boxes.append(torch.ones_like(cells).repeat(1, 4) * BOX_HALF)
            points.append(torch.ones_like(cells) * torch.tensor(KEYPOINTS).flatten()[None])
        return (*scores, *boxes, *points)


class Recognizer(nn.Module):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.proj = nn.Parameter(torch.randn(3 * 14 * 14, 512, generator=generator))

    def forward(self, x):
        return F.avg_pool2d(x, 8).flatten(1) @ self.proj


class Landmarks(nn.Module):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.proj = nn.Parameter(torch.randn(3 * 6 * 6, 3309, generator=generator) * 0.01)

    def forward(self, x):
        return torch.tanh(F.avg_pool2d(x, 32).flatten(1) @ self.proj)


def make_pack(directory: Path, landmarks: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    models = [("det_10g.onnx", Detector(), torch.zeros(1, 3, 640, 640), {"input.1": {2: "h", 3: "w"}}),
              ("w600k_r50.onnx", Recognizer(), torch.zeros(1, 3, 112, 112), {"input.1": {0: "n"}})]
    if landmarks:
        models.append(("1k3d68.onnx", Landmarks(), torch.zeros(1, 3, 192, 192), {}))
    for name, module, example, axes in models:
        torch.onnx.export(module.eval(), (example,), str(directory / name), input_names=["input.1"],
                          dynamic_axes=axes or None, dynamo=False)
    return directory
