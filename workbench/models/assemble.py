"""One place that turns component configs into a diffusers pipeline with fresh random weights.

The tiny families (``tiny.py``, small configs, CPU tests) and the real-size random families
(``realsize.py``, real configs, GPU speed runs) differ only in the configs they pass here.
"""

from __future__ import annotations

import contextlib
from typing import Any

DENOISER = {"sd": "unet", "sdxl": "unet", "flux": "transformer"}


def assemble_pipeline(arch: str, configs: dict[str, dict[str, Any]], building=None) -> Any:
    """A pipeline of ``arch`` from ``configs`` (keys ``unet`` or ``transformer``, ``vae``,
    ``text_encoder``, ``text_encoder_2`` for sdxl/flux, ``scheduler``), models created inside the
    ``building`` context (e.g. on a device and dtype) in a fixed order, so a seed fixes every weight."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from .tokenizers import clip_tokenizer, t5_tokenizer

    if arch not in DENOISER:
        raise ValueError(f"no pipeline builder for arch {arch!r}")
    # Schedulers keep their tables on the CPU (the pipeline converts them with numpy): built outside.
    scheduler_class = FlowMatchEulerDiscreteScheduler if arch == "flux" else EulerDiscreteScheduler
    scheduler = scheduler_class(**configs.get("scheduler", {}))
    with building or contextlib.nullcontext():
        if arch == "flux":
            transformer = FluxTransformer2DModel(**configs["transformer"])
            vae = AutoencoderKL(**configs["vae"])
            return FluxPipeline(
                transformer=transformer, vae=vae,
                text_encoder=CLIPTextModel(CLIPTextConfig(**configs["text_encoder"])), tokenizer=clip_tokenizer(),
                text_encoder_2=T5EncoderModel(T5Config(**configs["text_encoder_2"])), tokenizer_2=t5_tokenizer(),
                scheduler=scheduler)
        vae = AutoencoderKL(**configs["vae"])
        unet = UNet2DConditionModel(**configs["unet"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
        if arch == "sd":
            return StableDiffusionPipeline(
                vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=clip_tokenizer(), scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        return StableDiffusionXLPipeline(
            vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"])),
            tokenizer_2=clip_tokenizer(), scheduler=scheduler)
