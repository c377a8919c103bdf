"""The face detailer (ADetailer in A1111/ComfyUI, Astria's ``inpaint_faces``): a face that is small in the
frame — half-body and full-body shots, where most likeness is lost — is re-rendered at the family's
native resolution through the inpainting form of the same pipeline (same weights, the likeness fused in,
the same IP-Adapter), then pasted back through a feathered mask. Pixels outside the mask are the
original's, exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFAULTS = {"max_face_share": 0.15, "margin": 1.8, "strength": 0.45, "steps": None, "feather": 0.08,
            "prompt": "detailed photo of the face of {subject}, sharp focus"}


@dataclass
class DetailResult:
    image: Image.Image
    applied: bool
    reason: str
    box: tuple[int, int, int, int] | None = None  # the crop in image pixels
    mask: Image.Image | None = None  # full-image mask (L): 255 = replaced, 0 = original pixels


def settings_of(detailer: dict | None) -> dict[str, Any]:
    """The detailer's settings with defaults filled (``detailer: {}`` in a pack turns it on)."""
    unknown = set(detailer or {}) - set(DEFAULTS)
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"detailer: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}.")
    return {**DEFAULTS, **(detailer or {})}


def crop_box(face_box, size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """A square around the face, ``margin`` x its larger side, kept inside the image."""
    x0, y0, x1, y1 = face_box
    side = min(max(x1 - x0, y1 - y0) * margin, *size)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), size[0] - side)))
    top = int(round(min(max(cy - side / 2, 0), size[1] - side)))
    return left, top, left + int(side), top + int(side)


def face_mask(box, face_box, size: tuple[int, int], feather: float) -> Image.Image:
    """An ellipse over the face inside ``box``, blurred at its edge; zero everywhere else."""
    mask = Image.new("L", size, 0)
    x0, y0, x1, y1 = face_box
    pad_x, pad_y = (x1 - x0) * 0.15, (y1 - y0) * 0.2
    ellipse = (max(box[0], x0 - pad_x), max(box[1], y0 - pad_y), min(box[2], x1 + pad_x), min(box[3], y1 + pad_y))
    ImageDraw.Draw(mask).ellipse(ellipse, fill=255)
    radius = max(1.0, feather * (box[2] - box[0]))
    blurred = mask.filter(ImageFilter.GaussianBlur(radius))
    # the blur must not reach outside the crop: what lies outside stays the original exactly
    outside = Image.new("L", size, 0)
    outside.paste(blurred.crop(box), box[:2])
    return outside


def detail_face(pipe, image: Image.Image, faces: list, prompt: str, steps: int, guidance: float, seed: int,
                native: int, options: dict[str, Any], extra: dict[str, Any] | None = None) -> DetailResult:
    """Re-render the largest face when it covers less than ``max_face_share`` of the image."""
    import torch
    from diffusers import AutoPipelineForInpainting

    if not faces:
        return DetailResult(image, False, "no face found")
    face = faces[0]
    share = (face.bbox[2] - face.bbox[0]) * (face.bbox[3] - face.bbox[1]) / (image.width * image.height)
    if share >= options["max_face_share"]:
        return DetailResult(image, False, f"face covers {share:.0%} of the image (>= {options['max_face_share']:.0%})")
    box = crop_box(face.bbox, image.size, options["margin"])
    mask = face_mask(box, face.bbox, image.size, options["feather"])
    crop = image.crop(box).resize((native, native), Image.LANCZOS)
    crop_mask = mask.crop(box).resize((native, native), Image.BILINEAR)
    inpaint = AutoPipelineForInpainting.from_pipe(pipe)  # the same modules: weights, LoRA, IP-Adapter
    inpaint.set_progress_bar_config(disable=True)
    # strength s runs s x steps of the schedule: at least one must remain
    total = max(options["steps"] or steps, math.ceil(1 / max(options["strength"], 1e-3)))
    redone = inpaint(prompt=prompt, image=crop, mask_image=crop_mask, strength=options["strength"],
                     num_inference_steps=total, guidance_scale=guidance, height=native,
                     width=native, generator=torch.Generator("cpu").manual_seed(seed), **(extra or {})).images[0]
    patch = redone.resize((box[2] - box[0], box[3] - box[1]), Image.LANCZOS)
    pasted = image.copy()
    pasted.paste(patch, box[:2])
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    blended = np.asarray(image, dtype=np.float32) * (1 - alpha) + np.asarray(pasted, dtype=np.float32) * alpha
    out = np.where(alpha > 0, np.clip(np.round(blended), 0, 255), np.asarray(image)).astype(np.uint8)
    return DetailResult(Image.fromarray(out), True, f"face covered {share:.0%}: re-rendered at {native}px",
                        box, mask)
