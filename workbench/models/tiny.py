"""Tiny families: the real diffusers/transformers classes with small configs and random weights.

Built once with a fixed seed and cached under ``WORKBENCH_HOME/models/<family>`` with
``save_pretrained``, so loading a tiny family goes through the same ``from_pretrained`` path as a
real local model directory. Tokenizers are made locally (``tokenizers.py``), not downloaded.
"""

from __future__ import annotations

from typing import Any

from .families import Family
from .tokenizers import clip_tokenizer, t5_tokenizer

SEED = 20261126


def build_tiny_pipeline(family: Family) -> Any:
    """A freshly initialised tiny pipeline for ``family`` (deterministic: fixed seed)."""
    import torch

    from .architectures import get_architecture
    from .components import TINY_TEXT_ENCODER

    architecture = get_architecture(family.arch)
    configs = architecture.tiny_components(dict(TINY_TEXT_ENCODER, vocab_size=len(clip_tokenizer())),
                                           len(t5_tokenizer()))
    torch.manual_seed(SEED)
    return architecture.assemble(configs)


TINY_CLIP_VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8, projection_dim=32)
TINY_CLIP_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                      max_position_embeddings=77, projection_dim=32)


def build_tiny_clip(directory, seed: int = 0):
    """A random-weight CLIPModel + CLIPProcessor saved with ``save_pretrained``, so the image-quality
    metrics load it through the same ``from_pretrained`` path as openai/clip-vit-*."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(text_config={**TINY_CLIP_TEXT, "vocab_size": len(tokenizer)},
                        vision_config=TINY_CLIP_VISION, projection_dim=32)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
