"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric")
on aligned face crops, for PhotoMaker's Face-Div: the mean pairwise LPIPS between the faces generated
for one prompt — variety of pose, expression and light, not of identity.

The formula is torchmetrics' (``functional/image/lpips.py``: unit-normalised channels, squared
difference, the paper's learned linear weights — shipped inside torchmetrics — spatial mean, sum over
layers); the backbone is pluggable like the CLIP of ``clip.py``: ``"alex"`` is torchvision's
ImageNet AlexNet (needs torchvision and its cached weights), or any module returning AlexNet's five
feature maps (64, 192, 384, 256, 256 channels) — the tests use a random one.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

ALEX_CHANNELS = (64, 192, 384, 256, 256)
CROP = 128  # aligned face crop side in px


class RandomAlexLike(nn.Module):
    """Five conv stages with AlexNet's channel counts and random weights: an offline stand-in backbone."""

    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        channels, stages = (3, *ALEX_CHANNELS), []
        for index, (c_in, c_out) in enumerate(zip(channels, channels[1:], strict=False)):
            conv = nn.Conv2d(c_in, c_out, 3, stride=2 if index < 2 else 1, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / (9 * c_in)) ** 0.5)
                conv.bias.zero_()
            stages.append(nn.Sequential(conv, nn.ReLU()))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _stage_outputs(self.stages, x)


def _stage_outputs(stages: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every stage in turn: the feature maps LPIPS compares."""
    features = []
    for stage in stages:
        x = stage(x)
        features.append(x)
    return features


class TorchvisionAlex(nn.Module):
    """torchvision's ImageNet AlexNet cut at LPIPS's five ReLUs (needs torchvision and cached weights)."""

    def __init__(self):
        super().__init__()
        import torchvision

        layers = torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.DEFAULT).features
        cuts = (2, 5, 8, 10, 12)
        self.slices = nn.ModuleList([layers[a:b] for a, b in zip((0, *cuts), cuts, strict=False)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _stage_outputs(self.slices, x)


class LpipsModel:
    """LPIPS distance between images; ``unavailable`` says why when the backbone cannot load."""

    def __init__(self, backbone: str | nn.Module | None = "alex"):
        self.net, self.unavailable, self.name = None, None, "none"
        if backbone is None:
            self.unavailable = "LPIPS disabled"
            return
        try:
            self.net = backbone if isinstance(backbone, nn.Module) else _named_backbone(backbone)
        except Exception as exc:  # missing torchvision / weights: every row says why
            self.unavailable = (f"LPIPS backbone {backbone!r} not available here ({type(exc).__name__}): `pip install "
                                "'likeness-workbench[quality]'` (torchvision) and cache its AlexNet weights, or pass a "
                                "backbone module")
            return
        from torchmetrics.functional.image.lpips import NetLinLayer, ScalingLayer

        self.name = backbone if isinstance(backbone, str) else type(backbone).__name__
        self.scaling = ScalingLayer()
        self.lins = nn.ModuleList([NetLinLayer(c, use_dropout=True) for c in ALEX_CHANNELS])
        import torchmetrics

        weights = Path(torchmetrics.__file__).parent / "functional" / "image" / "lpips_models" / "alex.pth"
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.lins.load_state_dict({k.replace("lin", "", 1): v for k, v in state.items() if k.startswith("lin")})
        self.net.eval()
        self.lins.eval()

    @torch.no_grad()
    def distance(self, a: Image.Image, b: Image.Image) -> float:
        from torchmetrics.functional.image.lpips import _normalize_tensor, _spatial_average

        x, y = (self.scaling(_to_tensor(image)) for image in (a, b))
        total = 0.0
        for lin, fa, fb in zip(self.lins, self.net(x), self.net(y), strict=True):
            total += float(_spatial_average(lin((_normalize_tensor(fa) - _normalize_tensor(fb)) ** 2)).sum())
        return total


ALEX_WEIGHTS = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1 file


def _named_backbone(name: str) -> nn.Module:
    """Only from the local torch hub cache: a scoring run never reaches for the network."""
    if name != "alex":
        raise ValueError(f"unknown LPIPS backbone {name!r}; use 'alex' or pass a module")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEX_WEIGHTS
    if not cached.is_file():
        raise FileNotFoundError(f"{cached} (run once with network: python -c \"import torchvision; "
                                "torchvision.models.alexnet(weights='DEFAULT')\")")
    return TorchvisionAlex()


def _to_tensor(image: Image.Image) -> torch.Tensor:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0  # [-1, 1], as LPIPS expects
    return torch.from_numpy(pixels).permute(2, 0, 1)[None]


def aligned_crop(image: Image.Image, face, side: int = CROP) -> Image.Image:
    """The face similarity-aligned to ArcFace's 5-point template (scaled to ``side``), so pose changes
    stay visible but position and scale in the frame do not count as variety."""
    import cv2

    from ..faces.align import ARCFACE_TEMPLATE

    template = ARCFACE_TEMPLATE * (side / 112.0)
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(face.keypoints, dtype=np.float32), template, method=cv2.LMEDS)
    pixels = cv2.warpAffine(np.asarray(image.convert("RGB")), matrix, (side, side), borderValue=0.0)
    return Image.fromarray(pixels)


def detected_crop(image: Image.Image, face, side: int = CROP) -> Image.Image:
    """The detected face region as PhotoMaker's Face-Div compares it: the detector's box (made square about
    its centre), resized to ``side``; where the face sits and how it is turned both count as variety."""
    x0, y0, x1, y1 = face.bbox
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    return image.convert("RGB").crop(box).resize((side, side), Image.BILINEAR)


def face_div_lpips(model: LpipsModel, crops: list[Image.Image]) -> float | None:
    """Mean pairwise LPIPS of the crops; needs two."""
    if model.net is None or len(crops) < 2:
        return None
    return float(np.mean([model.distance(a, b) for a, b in combinations(crops, 2)]))
