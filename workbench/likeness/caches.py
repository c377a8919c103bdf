"""What training draws its batches from: VAE latents and text conditioning per training photo, encoded once
and grouped by crop shape (aspect buckets), and the class images of prior preservation, drawn once from the
base model and cached the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..interrupts import on_step_end
from ..models.architectures.base import upload


class Cache:
    """Latents and conditioning per aspect bucket (one bucket when training square). A batch is
    drawn from one bucket, chosen in proportion to its size, so tensors in a batch share a shape."""

    def __init__(self, buckets: list[tuple[torch.Tensor, dict[str, Any]]]):
        self.buckets = buckets
        self.sizes = torch.tensor([float(latents.shape[0]) for latents, _ in buckets])

    def draw(self, adapter, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        bucket = 0 if len(self.buckets) == 1 else int(torch.multinomial(self.sizes, 1, generator=generator))
        latents, cond = self.buckets[bucket]
        index = torch.randint(0, latents.shape[0], (batch_size,), generator=generator)
        if "captions" in cond:
            return latents[upload(index, latents)], step_cond(adapter, cond, index)
        index = upload(index, latents)  # once for the latents and every conditioning tensor
        return latents[index], batch_cond(cond, index)


def build_caches(adapter, data, device, encode_text: bool = True) -> Cache:
    """VAE latents and text embeddings for every sample, grouped by crop shape. When the text
    encoders train, captions stay text and are encoded each step (``step_cond``)."""
    groups: dict[tuple[int, int], list] = {}
    for sample in data.samples:
        groups.setdefault(sample.image.size, []).append(sample)
    buckets = []
    for samples in groups.values():
        pixels = torch.stack([torch.from_numpy(np.asarray(s.image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
                              for s in samples])
        latents = torch.cat([adapter.encode_images(pixels[i:i + 4]) for i in range(0, len(pixels), 4)])
        captions = [s.caption for s in samples]
        if encode_text:
            cond = {k: v.to(device) for k, v in adapter.encode_captions(captions).items()}
        else:
            cond = {"captions": captions}
        buckets.append((latents.to(device), cond))
    return Cache(buckets)


SHARED_COND = {"text_ids"}  # FLUX text position ids are per sequence, not per sample


def batch_cond(cond: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v if k in SHARED_COND else v[index.to(v.device)] for k, v in cond.items()}


def step_cond(adapter, cond: dict[str, Any], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch's conditioning: sliced from the cache, or encoded now through the LoRA'd encoders."""
    if "captions" in cond:
        return adapter.encode_captions_with_grad([cond["captions"][i] for i in index.tolist()])
    return batch_cond(cond, index)


def class_images(pipe, adapter, config, fam, folder: Path, progress: bool):
    """Prior-preservation images: the base model's "photo of a <class>", drawn once and kept in
    ``folder`` (a resumed run reuses them), then treated like training samples."""
    from .prepare import Sample, TrainingSet

    folder.mkdir(parents=True, exist_ok=True)
    prompt = f"photo of a {config.class_word}"
    samples = []
    for i in tqdm(range(config.class_images), desc="class images", disable=not progress, unit="img"):
        path = folder / f"{i:04d}.png"
        if not path.is_file():
            with torch.no_grad():
                image = pipe(prompt=prompt, num_inference_steps=fam.steps, guidance_scale=fam.guidance,
                             height=config.resolution, width=config.resolution, callback_on_step_end=on_step_end,
                             generator=torch.Generator("cpu").manual_seed(10_000 + i)).images[0]
            from ..images import encode_png
            from ..store import atomic_write_bytes

            atomic_write_bytes(path, encode_png(image))
        from PIL import Image

        samples.append(Sample(file=path, image=Image.open(path).convert("RGB"), caption=prompt))
    return TrainingSet(samples=samples, held_out=[], token="", class_word=config.class_word)
