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
CLIP_TEXT = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
                 num_attention_heads=4, num_hidden_layers=2, projection_dim=32, max_position_embeddings=77)
VAE = dict(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
           down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
           sample_size=64)
UNET_SD = dict(block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
               down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
               up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
               norm_num_groups=4, attention_head_dim=4)
# SDXL: two text encoders concatenated (32 + 32 = 64), pooled text (32) + 6 time ids x 8 added.
UNET_SDXL = dict(UNET_SD, cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=8,
                 transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 32)
FLUX_TRANSFORMER = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                        axes_dims_rope=[4, 4, 8], guidance_embeds=True)
FLUX_VAE = dict(VAE, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                scaling_factor=1.5035)
T5_ENCODER = dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                  is_encoder_decoder=False, use_cache=False)
SD_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1)


def build_tiny_pipeline(family: Family) -> Any:
    """A freshly initialised tiny pipeline for ``family`` (deterministic: fixed seed)."""
    import torch

    from .assemble import assemble_pipeline

    text = dict(CLIP_TEXT, vocab_size=len(clip_tokenizer()))
    configs = {"sd": {"unet": UNET_SD, "vae": VAE, "text_encoder": text, "scheduler": SD_SCHEDULER},
               "sdxl": {"unet": UNET_SDXL, "vae": VAE, "text_encoder": text, "text_encoder_2": text,
                        "scheduler": SD_SCHEDULER},
               "flux": {"transformer": FLUX_TRANSFORMER, "vae": FLUX_VAE, "text_encoder": text,
                        "text_encoder_2": dict(T5_ENCODER, vocab_size=len(t5_tokenizer()))}}
    if family.arch not in configs:
        raise ValueError(f"no tiny builder for arch {family.arch!r}")
    torch.manual_seed(SEED)
    return assemble_pipeline(family.arch, configs[family.arch])


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
