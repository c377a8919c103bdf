"""CLIP-based image metrics through torchmetrics: CLIP score (prompt adherence), CLIP-IQA (no-reference
quality), and FID / KID against a reference folder computed on CLIP image features (Kynkäänniemi et al.
2023 show ImageNet-Inception features reward ImageNet-like content; CLIP features track human judgement
of generated images better). The CLIP model is pluggable: a hub id or a local directory, loaded with the
real ``from_pretrained`` code; tests use a tiny random CLIP built from a config.

When the weights are absent every row says so (``unavailable``), never silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..config import Settings

DEFAULT_CLIP = "openai/clip-vit-base-patch16"
IQA_PROMPTS = ("quality", "sharpness", "noisiness")


class TensorFeatures(torch.nn.Module):
    """transformers 5 returns output objects from ``get_*_features``; torchmetrics 1.9 expects tensors."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return _tensor(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return _tensor(self.model.get_text_features(*args, **kwargs))


def _tensor(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _cached(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:
        return False


class ClipModel:
    """A CLIP model + processor from a hub id or local dir; ``unavailable`` says why it could not load."""

    def __init__(self, model: str | None = DEFAULT_CLIP, settings: Settings | None = None):
        self.name, self.model, self.processor, self.unavailable = model, None, None, None
        if model is None:
            self.unavailable = "CLIP metrics disabled"
            return
        settings = settings or Settings()
        local = Path(model).expanduser().is_dir()
        if not local and not settings.hub_available() and not _cached(model):
            self.unavailable = (f"CLIP weights {model!r} are not on this machine and the hub is unreachable; "
                                f"`hf download {model}` or pass --clip-model DIR")
            return
        try:
            from transformers import CLIPModel, CLIPProcessor

            source = str(Path(model).expanduser()) if local else model
            self.model = TensorFeatures(CLIPModel.from_pretrained(source).eval())
            self.processor = CLIPProcessor.from_pretrained(source)
        except Exception as exc:  # broken or partial weights: reported in every row
            self.unavailable = f"CLIP weights {model!r} could not be loaded ({type(exc).__name__}: {exc})"

    def pair(self):
        return self.model, self.processor

    @torch.no_grad()
    def image_features(self, images: list[Image.Image]) -> torch.Tensor:
        inputs = self.processor(images=[i.convert("RGB") for i in images], return_tensors="pt")
        return self.model.get_image_features(pixel_values=inputs["pixel_values"])


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


CLIP_IQA = "clip_iqa"  # the weights CLIP-IQA was defined with (Wang et al. 2023; RN50 CLIP, via piq)


class ClipScorer:
    """Per image: CLIP score against its prompt, and CLIP-IQA for each of ``IQA_PROMPTS``.

    CLIP-IQA runs by default on the weights it was defined with (``clip_iqa``: torchmetrics loads them
    through the ``piq`` package, which downloads them once); ``iqa_model`` plugs in another CLIP (a hub
    id, a dir, or a loaded ``ClipModel``: what the offline tests do). Without its weights every row says why."""

    def __init__(self, clip: ClipModel | str | None = DEFAULT_CLIP, settings: Settings | None = None,
                 iqa_model: ClipModel | str | None = CLIP_IQA):
        self.clip = clip if isinstance(clip, ClipModel) else ClipModel(clip, settings)
        self.unavailable = self.clip.unavailable
        self.iqa_unavailable = None
        self.score_metric = self.iqa_metric = None
        if self.clip.model is not None:
            from torchmetrics.multimodal.clip_score import CLIPScore

            self.score_metric = CLIPScore(model_name_or_path=self.clip.pair)
        self.iqa_metric, self.iqa_unavailable = _iqa_metric(iqa_model, settings)

    def __call__(self, image: Image.Image, prompt: str) -> float | None:
        return self.score(image, prompt)

    @torch.no_grad()
    def score(self, image: Image.Image, prompt: str) -> float | None:
        if self.score_metric is None or not prompt:
            return None
        self.score_metric.reset()
        return float(self.score_metric(_pixels(image), prompt).detach())

    @torch.no_grad()
    def iqa(self, image: Image.Image) -> dict[str, float | None]:
        if self.iqa_metric is None:
            return {f"clip_iqa_{p}": None for p in IQA_PROMPTS}
        self.iqa_metric.reset()
        values = self.iqa_metric(_pixels(image)[None].float() / 255.0)
        return {f"clip_iqa_{p}": float(values[p].reshape(-1)[0]) for p in IQA_PROMPTS}


def _iqa_metric(model: ClipModel | str | None, settings: Settings | None):
    """(metric, None) or (None, why): CLIP-IQA on its own weights or a pluggable CLIP."""
    from torchmetrics.multimodal import CLIPImageQualityAssessment

    if model is None:
        return None, "CLIP-IQA disabled"
    if model == CLIP_IQA:
        try:
            return CLIPImageQualityAssessment(model_name_or_path=CLIP_IQA, prompts=IQA_PROMPTS), None
        except Exception as exc:  # piq missing, or its weights not downloadable here
            return None, (f"CLIP-IQA's own weights are not available here ({type(exc).__name__}): `pip install "
                          "'likeness-workbench[quality]'` (piq) "
                          "on a connected machine loads them once; or pass --clip-iqa-model DIR")
    clip = model if isinstance(model, ClipModel) else ClipModel(model, settings)
    if clip.model is None:
        return None, clip.unavailable
    return CLIPImageQualityAssessment(model_name_or_path=clip.pair, prompts=IQA_PROMPTS), None


class ClipFeatureExtractor(torch.nn.Module):
    """The feature network torchmetrics' FID/KID call: uint8 NCHW images -> CLIP image embeddings."""

    def __init__(self, clip: ClipModel):
        super().__init__()
        self.clip = clip
        self.num_features = int(clip.model.config.projection_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pil = [Image.fromarray(img.permute(1, 2, 0).to(torch.uint8).cpu().numpy()) for img in images]
        return self.clip.image_features(pil).double()


# KID is unbiased (Binkowski et al. 2018: an MMD^2 U-statistic), so it holds at small n; it is computed over
# random subsets of half the smaller side, so the subsets differ and its std says something (at n equal to
# the subset size every subset was the whole set and the std was 0).
KID_MIN_IMAGES = 10
# FID fits a Gaussian to each side: its covariance is full rank only with more images than feature
# dimensions, and below that the score is biased and unstable (Chong & Forsyth 2020).
MIN_DISTRIBUTION_IMAGES = KID_MIN_IMAGES


def letterbox(image: Image.Image, side: int) -> Image.Image:
    """Resize keeping the aspect (the longer side to ``side``), centred on grey: squashing a portrait
    photo to a square distorts exactly the features FID compares."""
    image = image.convert("RGB")
    scale = side / max(image.size)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    canvas.paste(resized, ((side - resized.width) // 2, (side - resized.height) // 2))
    return canvas


def distribution_metrics(generated: list[Image.Image], reference: list[Image.Image], clip: ClipModel,
                         side: int = 224, min_images: int | None = None) -> dict[str, Any]:
    """FID and KID (mean, std over subsets) of ``generated`` against ``reference`` on CLIP features, each
    only where its own minimum holds: KID from ``KID_MIN_IMAGES`` a side, FID from one image more than the
    feature dimensions a side (513 for ViT-B CLIP's 512-d features); None + the reason otherwise.
    ``min_images`` overrides both minimums (tests of the arithmetic on a handful of images)."""
    names = ("fid_clip", "kid_clip", "kid_clip_std")
    if clip.model is None:
        return {n: (None, clip.unavailable) for n in names}
    dims = int(getattr(clip.model.config, "projection_dim", 512))
    fid_min = min_images or dims + 1
    kid_min = min_images or KID_MIN_IMAGES
    smaller = min(len(generated), len(reference))
    have = f"(have {len(generated)} generated and {len(reference)} reference images)"
    results: dict[str, Any] = {}
    if smaller < fid_min:
        results["fid_clip"] = (None, f"FID needs at least {fid_min} images a side on {dims}-d CLIP features for a "
                                     f"full-rank covariance {have}; read KID at this size")
    if smaller < kid_min:
        results.update({n: (None, f"KID needs at least {kid_min} images a side {have}")
                        for n in ("kid_clip", "kid_clip_std")})
    if len(results) == len(names):
        return results
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    extractor = ClipFeatureExtractor(clip)
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=True)
    kid = KernelInceptionDistance(feature=extractor, subset_size=max(2, min(50, smaller // 2)), subsets=50)
    for images, real in ((reference, True), (generated, False)):
        batch = torch.stack([_pixels(letterbox(i, side)) for i in images])
        fid.update(batch, real=real)
        kid.update(batch, real=real)
    if "fid_clip" not in results:
        results["fid_clip"] = (float(fid.compute()), None)
    if "kid_clip" not in results:
        kid_mean, kid_std = kid.compute()
        results["kid_clip"], results["kid_clip_std"] = (float(kid_mean), None), (float(kid_std), None)
    return {n: results[n] for n in names}
