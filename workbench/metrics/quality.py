"""Image quality: no-reference sharpness and exposure (always available), and CLIP score through
torchmetrics when CLIP weights are on this machine (skipped with a stated reason otherwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..config import Settings
from ..selfies.photo import face_gray, sharpness

DEFAULT_CLIP = "openai/clip-vit-base-patch16"


def no_reference(image: Image.Image, face=None) -> dict[str, float]:
    """Sharpness and exposure of the face region if there is a face, else of the whole image."""
    if face is not None:
        gray = face_gray(image, face)
    else:
        gray = np.asarray(image.convert("L").resize((128, 128), Image.BILINEAR), dtype=np.float32)
    return {"sharpness": sharpness(gray), "exposure": float(gray.mean()) / 255.0}


class ClipScorer:
    """torchmetrics' CLIPScore, loaded from a hub id or local dir; ``unavailable`` says why not."""

    def __init__(self, model: str | None = DEFAULT_CLIP, settings: Settings | None = None):
        self.model, self.metric, self.unavailable = model, None, None
        if model is None:
            self.unavailable = "CLIP score disabled"
            return
        settings = settings or Settings()
        local = Path(model).expanduser().is_dir()
        if not local and not settings.hub_available() and not _cached(model):
            self.unavailable = (f"CLIP weights {model!r} are not on this machine and the hub is unreachable; "
                                f"`huggingface-cli download {model}` or pass --clip-model DIR")
            return
        try:
            from torchmetrics.multimodal.clip_score import CLIPScore

            self.metric = CLIPScore(model_name_or_path=model)
        except Exception as exc:  # broken or partial weights: reported in every row, never silent
            self.unavailable = f"CLIP weights {model!r} could not be loaded ({type(exc).__name__}: {exc})"

    def __call__(self, image: Image.Image, prompt: str) -> float | None:
        if self.metric is None:
            return None
        import torch

        pixels = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
        return float(self.metric(pixels, prompt).detach())


def _cached(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:
        return False
