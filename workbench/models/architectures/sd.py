"""Stable Diffusion 1.x/2.x: a UNet with one CLIP text encoder, epsilon (or v) prediction on a DDPM
schedule. Everything the workbench does differently for it is here."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from .. import components as parts
from .base import Adapter, Architecture, IPAdapterWeights, MemoryProfile, upload

# UNets are host-bound at batch 1 (plain diffusers' SDXL LoRA step on an H200: b1 338 ms, b4 348 ms, b1 +
# checkpointing 657 ms), so a batch of 4 with checkpointing comes before a batch of 1 without: about twice as
# fast per sample. The low tier comes last.
UNET_CANDIDATES = (("full", 4), ("full", 2), ("balanced", 4), ("balanced", 2), ("full", 1), ("balanced", 1),
                   ("low", 4), ("low", 2), ("low", 1))
# The published SD1.5 UNet (stable-diffusion-v1-5/unet/config.json): 859.5 M parameters.
UNET_SD15 = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
TINY_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                 norm_num_groups=4, attention_head_dim=4)


class UNetAdapter(Adapter):
    """SD 1.x/2.x: epsilon (or v) prediction on a DDPM schedule."""

    arch = "sd"

    def __init__(self, pipe: Any):
        super().__init__(pipe)
        from diffusers import DDPMScheduler

        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    def encode_captions_with_grad(self, captions: list[str]) -> dict[str, torch.Tensor]:
        embeds, _ = self.pipe.encode_prompt(captions, self.pipe.device, 1, False)
        return {"prompt_embeds": embeds}

    def added_cond(self, cond: dict[str, torch.Tensor], latents: torch.Tensor) -> dict[str, Any]:
        return {}

    def loss(self, model, latents, cond, generator):
        noise = upload(torch.randn(latents.shape, generator=generator), latents)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = upload(torch.randint(0, steps, (latents.shape[0],), generator=generator), latents)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        pred = model(noisy, timesteps, cond["prompt_embeds"], added_cond_kwargs=self.added_cond(cond, latents)).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(pred.float(), target.float())


def assemble(configs: dict[str, dict[str, Any]], building=None) -> Any:
    """A StableDiffusionPipeline with fresh random weights from component ``configs``."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ..tokenizers import clip_tokenizer

    scheduler = EulerDiscreteScheduler(**configs.get("scheduler", {}))  # its tables stay on the CPU
    with building or contextlib.nullcontext():
        vae = AutoencoderKL(**configs["vae"])
        unet = UNet2DConditionModel(**configs["unet"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
        return StableDiffusionPipeline(
            vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=clip_tokenizer(), scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def tiny_components(clip_text: dict[str, Any], t5_vocab: int) -> dict[str, dict[str, Any]]:
    return {"unet": TINY_UNET, "vae": parts.TINY_VAE, "text_encoder": clip_text, "scheduler": parts.TINY_SD_SCHEDULER}


def realsize_components(small: bool = False) -> dict[str, dict[str, Any]]:
    return {"unet": UNET_SD15, "vae": parts.VAE_SD, "text_encoder": parts.CLIP_L, "scheduler": parts.SCHEDULER_SD}


def encode_probes(pipe, prompts: list[str], device, cfg: bool, family) -> dict[str, Any]:
    embeds, negative = pipe.encode_prompt(prompts, device, 1, cfg)
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negative}


def cached_conditioning(family, batch: int, dtype) -> dict[str, torch.Tensor]:
    """A cached batch's text conditioning, with the real encoder's shapes (on the meta device)."""
    return {"prompt_embeds": torch.zeros(batch, 77, 768, dtype=dtype, device="meta")}


ARCHITECTURE = Architecture(
    name="sd", pipeline_class="StableDiffusionPipeline", denoiser="unet", adapter=UNetAdapter, prediction="noise",
    memory=MemoryProfile(resident_params=943_174_827, lora_params_per_rank=199_296,
                         activations=((0.01, 1.04), (0.01, 0.25)), native=512, text_encoder_params=123_060_480,
                         text_encoder_lora_per_rank=73_728, text_encoder_activations=(0.03, 0.03),
                         candidates=UNET_CANDIDATES),
    assemble=assemble, tiny_components=tiny_components, realsize_components=realsize_components,
    encode_probes=encode_probes, cached_conditioning=cached_conditioning, demo_samplers=("euler", "dpmpp_2m"),
    kohya_base_version="sd_v1", load_kwargs={"safety_checker": None, "requires_safety_checker": False},
    ip_adapter=IPAdapterWeights("h94/IP-Adapter", "models", "ip-adapter-plus-face_sd15.safetensors", "image_encoder"),
    faceid=IPAdapterWeights("h94/IP-Adapter-FaceID", "", "ip-adapter-faceid_sd15.bin", ""))
