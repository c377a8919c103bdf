"""Stable Diffusion XL: a UNet with two CLIP text encoders, pooled text and size/crop time ids as added
conditions, epsilon prediction. Everything the workbench does differently for it is here."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .. import components as parts
from .base import Architecture, IPAdapterWeights, MemoryProfile, upload
from .sd import TINY_UNET, UNET_CANDIDATES, UNetAdapter

# The published SDXL base UNet (stable-diffusion-xl-base-1.0/unet/config.json): 2567.5 M parameters.
UNET_SDXL = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280), cross_attention_dim=2048, attention_head_dim=(5, 10, 20),
                 transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
CLIP_BIGG = dict(parts.CLIP_L, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 hidden_act="gelu", projection_dim=1280)
VAE_SDXL = dict(parts.VAE_SD, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
# Tiny: two text encoders concatenated (32 + 32 = 64), pooled text (32) + 6 time ids x 8 added.
TINY_UNET_SDXL = dict(TINY_UNET, cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
                      addition_embed_type="text_time", addition_time_embed_dim=8,
                      transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 32)


class SDXLAdapter(UNetAdapter):
    """SDXL: two text encoders, pooled text and size/crop time ids as added conditions."""

    arch = "sdxl"

    def encode_captions_with_grad(self, captions: list[str]) -> dict[str, torch.Tensor]:
        embeds, _, pooled, _ = self.pipe.encode_prompt(captions, device=self.pipe.device, num_images_per_prompt=1,
                                                       do_classifier_free_guidance=False)
        return {"prompt_embeds": embeds, "pooled": pooled}

    def added_cond(self, cond, latents):
        height, width = (side * self.pipe.vae_scale_factor for side in latents.shape[-2:])
        # original size, crop top-left, target size: our crops are already at the bucket's size
        time_ids = upload(torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32), cond["pooled"])
        return {"text_embeds": cond["pooled"], "time_ids": time_ids.repeat(cond["pooled"].shape[0], 1)}


def assemble(configs: dict[str, dict[str, Any]], building=None) -> Any:
    """A StableDiffusionXLPipeline with fresh random weights from component ``configs``."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from ..tokenizers import clip_tokenizer

    scheduler = EulerDiscreteScheduler(**configs.get("scheduler", {}))  # its tables stay on the CPU
    with building or contextlib.nullcontext():
        vae = AutoencoderKL(**configs["vae"])
        unet = UNet2DConditionModel(**configs["unet"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
        return StableDiffusionXLPipeline(
            vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"])),
            tokenizer_2=clip_tokenizer(), scheduler=scheduler)


def tiny_components(clip_text: dict[str, Any], t5_vocab: int) -> dict[str, dict[str, Any]]:
    return {"unet": TINY_UNET_SDXL, "vae": parts.TINY_VAE, "text_encoder": clip_text, "text_encoder_2": clip_text,
            "scheduler": parts.TINY_SD_SCHEDULER}


def realsize_components(small: bool = False) -> dict[str, dict[str, Any]]:
    return {"unet": UNET_SDXL, "vae": VAE_SDXL, "text_encoder": parts.CLIP_L, "text_encoder_2": CLIP_BIGG,
            "scheduler": parts.SCHEDULER_SD}


def encode_probes(pipe, prompts: list[str], device, cfg: bool, family) -> dict[str, Any]:
    embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
        prompts, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg)
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negative, "pooled_prompt_embeds": pooled,
            "negative_pooled_prompt_embeds": negative_pooled}


def cached_conditioning(family, batch: int, dtype) -> dict[str, torch.Tensor]:
    """A cached batch's text conditioning, with the real encoders' shapes (on the meta device)."""
    return {"prompt_embeds": torch.zeros(batch, 77, 2048, dtype=dtype, device="meta"),
            "pooled": torch.zeros(batch, 1280, dtype=dtype, device="meta")}


ARCHITECTURE = Architecture(
    name="sdxl", pipeline_class="StableDiffusionXLPipeline", denoiser="unet", adapter=SDXLAdapter,
    prediction="noise",
    memory=MemoryProfile(resident_params=2_651_117_547, lora_params_per_rank=1_451_520,
                         activations=((0.06, 6.77), (0.0, 0.67)), native=1024, text_encoder_params=817_720_320,
                         text_encoder_lora_per_rank=401_408, text_encoder_activations=(0.34, 0.18),
                         candidates=UNET_CANDIDATES),
    assemble=assemble, tiny_components=tiny_components, realsize_components=realsize_components,
    encode_probes=encode_probes, cached_conditioning=cached_conditioning, demo_samplers=("euler", "dpmpp_2m"),
    kohya_base_version="sdxl_base_v1-0",
    ip_adapter=IPAdapterWeights("h94/IP-Adapter", "sdxl_models", "ip-adapter-plus-face_sdxl_vit-h.safetensors",
                                "models/image_encoder"),
    faceid=IPAdapterWeights("h94/IP-Adapter-FaceID", "", "ip-adapter-faceid_sdxl.bin", ""))
