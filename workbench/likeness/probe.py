"""Held-out identity probes at each checkpoint, and the choice of checkpoint.

A fixed probe set (prompts x seeds) is rendered with the LoRA as it is at that step; each image is
scored against the validation photos (never trained on) and against the nearest training photo, so
both likeness and copy-paste over-fitting are on the curve. Validation photos choose the checkpoint and
are therefore never reported as a test score: that is what the test photos are for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..images import encode_png
from ..interrupts import on_step_end
from ..models.architectures import get_architecture
from ..store import atomic_write_bytes


def probe_prompts(config, subject: str) -> tuple[list[str], list[int]]:
    """The probe set, prompts x seeds, as one batch: the prompt of each image and its seed."""
    pairs = [(prompt.format(subject=subject), seed) for prompt in config.probe_prompts for seed in config.probe_seeds]
    return [prompt for prompt, _ in pairs], [seed for _, seed in pairs]


def encode_probes(pipe, config, family, subject: str, device) -> dict[str, Any]:
    """The probe batch's text embeddings, encoded once before training while the text encoders are still
    on the device, exactly as the pipeline would encode them at each checkpoint. With them, probes never
    bring the encoders back to the GPU (FLUX's T5-XXL is 9.5 GB: on a 24 GB card it would not fit beside
    the training state). Only for frozen text encoders: trained ones change at every step."""
    prompts, _ = probe_prompts(config, subject)
    with torch.no_grad():
        return get_architecture(family.arch).encode_probes(pipe, prompts, device, family.guidance > 1, family)


def render_probes(pipe, config, family, subject: str, embeds: dict[str, Any] | None = None) -> list:
    """The probe images: from ``embeds`` (``encode_probes``) when given, else from the prompts' text."""
    prompts, seeds = probe_prompts(config, subject)
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    extra = get_architecture(family.arch).render_kwargs(family)
    text = embeds if embeds is not None else {"prompt": prompts}
    return pipe(generator=generators, num_inference_steps=config.probe_steps, guidance_scale=family.guidance,
                height=config.resolution, width=config.resolution, callback_on_step_end=on_step_end, **text,
                **extra).images


def probe_checkpoint(pipe, adapter, config, family, data, analyzer, held_faces, train_faces, step: int,
                     folder: Path, losses: list[float], embeds: dict[str, Any] | None = None) -> dict[str, Any]:
    device = adapter.denoiser.device
    move = embeds is None  # without cached embeddings the encoders come to the device for the probe
    if move:
        for encoder in adapter.text_encoders():
            encoder.to(device)
    adapter.denoiser.eval()
    with torch.no_grad():
        images = render_probes(pipe, config, family, f"{data.token} {data.class_word}", embeds)
    adapter.denoiser.train()
    if move and device.type != "cpu" and not config.train_text_encoder:
        for encoder in adapter.text_encoders():
            encoder.to("cpu")
    folder.mkdir(parents=True, exist_ok=True)
    heldout, nearest, found = [], [], 0
    for i, image in enumerate(images):
        atomic_write_bytes(folder / f"step-{step:06d}-probe-{i}.png", encode_png(image))
        faces = analyzer.analyze(image)
        if not faces:
            continue
        found += 1
        if held_faces:
            heldout.append(np.mean([analyzer.similarity(faces[0], ref) for ref in held_faces]))
        if train_faces:
            nearest.append(max(analyzer.similarity(faces[0], ref) for ref in train_faces))
    recent = losses[-max(1, config.checkpoint_every):]
    return {"step": step, "loss": float(np.mean(recent)), "probe_images": len(images), "probe_faces": found,
            "validation_facesim": float(np.mean(heldout)) if heldout else None,
            "nearest_train_facesim": float(np.mean(nearest)) if nearest else None}


def select_checkpoint(curve: list[dict[str, Any]]) -> tuple[int, str]:
    """Best validation FaceSim (ties -> earlier step). Without any face in any probe (or without
    validation photos) there is no identity evidence: the last step is kept and the reason says so."""
    scored = [row for row in curve if row["validation_facesim"] is not None]
    if not scored:
        return curve[-1]["step"], "no validation face in any probe image (or no validation photos); kept the last step"
    best = max(row["validation_facesim"] for row in scored)
    chosen = min(row["step"] for row in scored if row["validation_facesim"] == best)
    return chosen, f"best validation FaceSim {best:.3f}"
