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


def render_probes(pipe, config, family, subject: str) -> list:
    prompts, generators = [], []
    for prompt in config.probe_prompts:
        for seed in config.probe_seeds:
            prompts.append(prompt.format(subject=subject))
            generators.append(torch.Generator("cpu").manual_seed(seed))
    extra = {"max_sequence_length": family.text_length} if family.arch == "flux" else {}
    return pipe(prompt=prompts, generator=generators, num_inference_steps=config.probe_steps,
                guidance_scale=family.guidance, height=config.resolution, width=config.resolution, **extra).images


def probe_checkpoint(pipe, adapter, config, family, data, analyzer, held_faces, train_faces, step: int,
                     folder: Path, losses: list[float]) -> dict[str, Any]:
    device = adapter.denoiser.device
    for encoder in adapter.text_encoders():
        encoder.to(device)
    adapter.denoiser.eval()
    with torch.no_grad():
        images = render_probes(pipe, config, family, f"{data.token} {data.class_word}")
    adapter.denoiser.train()
    if device.type != "cpu" and not config.train_text_encoder:
        for encoder in adapter.text_encoders():
            encoder.to("cpu")
    folder.mkdir(parents=True, exist_ok=True)
    heldout, nearest, found = [], [], 0
    for i, image in enumerate(images):
        image.save(folder / f"step-{step:06d}-probe-{i}.png")
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
