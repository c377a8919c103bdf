"""FLUX.1: a transformer on packed 2x2 latent patches with a CLIP and a T5 text encoder, rectified flow,
guidance-distilled (no negative prompt). Everything the workbench does differently for it is here."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from .. import components as parts
from .base import Adapter, Architecture, MemoryProfile, upload

# FLUX is compute-bound at batch 1 (one image's step runs at 407 TFLOP/s on the H100, RESULTS.md), where
# checkpointing's second forward pass costs about a third more per sample at any batch: eager first.
CANDIDATES = (("full", 4), ("full", 2), ("full", 1), ("balanced", 4), ("balanced", 2), ("balanced", 1),
              ("low", 4), ("low", 2), ("low", 1))
# The published FLUX.1-dev transformer (11.9 B parameters), its VAE, T5-XXL encoder (4.76 B) and scheduler.
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))
VAE_FLUX = dict(parts.VAE_SD, latent_channels=16, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False, force_upcast=True)
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
              relative_attention_max_distance=128, feed_forward_proj="gated-gelu", vocab_size=parts.T5_VOCAB,
              is_encoder_decoder=False, use_cache=False, dense_act_fn="gelu_new", is_gated_act=True)
SCHEDULER_FLUX = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15, shift=3.0,
                      use_dynamic_shifting=True)
# Reduced depth (real width) for CPU runs of the FLUX path (random-flux-small).
SMALL = {"transformer": dict(num_layers=1, num_single_layers=1), "t5": dict(num_layers=1)}
TINY_TRANSFORMER = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                        axes_dims_rope=[4, 4, 8], guidance_embeds=True)
TINY_VAE = dict(parts.TINY_VAE, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                scaling_factor=1.5035)
TINY_T5 = dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
               is_encoder_decoder=False, use_cache=False)


class FluxAdapter(Adapter):
    """FLUX.1: rectified flow on packed 2x2 latent patches; target is noise - x0."""

    arch = "flux"
    text_length = 512  # T5 tokens; the trainer sets the family's, which rendering uses too

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    def lora_owner_kwarg(self) -> str:
        return "transformer_lora_layers"

    def lora_state_to_save(self, peft_state: dict, convert) -> dict:
        """peft keys as they are (diffusers' FLUX script saves them so). Converting them renames the
        attention layers to the old ``.lora.down`` form, which the FLUX loader skips: those layers were
        silently dropped on load."""
        return peft_state

    def encode_captions_with_grad(self, captions: list[str]) -> dict[str, torch.Tensor]:
        embeds, pooled, text_ids = self.pipe.encode_prompt(captions, prompt_2=None, device=self.pipe.device,
                                                           max_sequence_length=self.text_length)
        return {"prompt_embeds": embeds, "pooled": pooled, "text_ids": text_ids}

    def loss(self, model, latents, cond, generator, guidance: float = 1.0):
        pipe = self.pipe
        batch, channels, height, width = latents.shape
        noise = upload(torch.randn(latents.shape, generator=generator), latents)
        # logit-normal timestep density, as in SD3/FLUX training (Esser et al. 2024)
        sigmas = upload(torch.sigmoid(torch.randn((batch,), generator=generator)), latents)
        noisy = (1.0 - sigmas[:, None, None, None]) * latents + sigmas[:, None, None, None] * noise
        packed = pipe._pack_latents(noisy, batch, channels, height, width)
        # diffusers builds the position ids on the CPU and copies them from pageable memory: uploaded instead
        image_ids = upload(pipe._prepare_latent_image_ids(batch, height // 2, width // 2, "cpu", torch.float32),
                           latents)
        guidance_vec = None
        if self.denoiser.config.guidance_embeds:
            guidance_vec = torch.full((batch,), guidance, device=latents.device, dtype=latents.dtype)
        pred = model(hidden_states=packed, timestep=sigmas, guidance=guidance_vec,
                             pooled_projections=cond["pooled"], encoder_hidden_states=cond["prompt_embeds"],
                             txt_ids=cond["text_ids"], img_ids=image_ids, return_dict=False)[0]
        pred = pipe._unpack_latents(pred, height * pipe.vae_scale_factor, width * pipe.vae_scale_factor,
                                    pipe.vae_scale_factor)
        return F.mse_loss(pred.float(), (noise - latents).float())


def assemble(configs: dict[str, dict[str, Any]], building=None) -> Any:
    """A FluxPipeline with fresh random weights from component ``configs``."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from ..tokenizers import clip_tokenizer, t5_tokenizer

    scheduler = FlowMatchEulerDiscreteScheduler(**configs.get("scheduler", {}))  # its tables stay on the CPU
    with building or contextlib.nullcontext():
        transformer = FluxTransformer2DModel(**configs["transformer"])
        vae = AutoencoderKL(**configs["vae"])
        return FluxPipeline(
            transformer=transformer, vae=vae,
            text_encoder=CLIPTextModel(CLIPTextConfig(**configs["text_encoder"])), tokenizer=clip_tokenizer(),
            text_encoder_2=T5EncoderModel(T5Config(**configs["text_encoder_2"])), tokenizer_2=t5_tokenizer(),
            scheduler=scheduler)


def tiny_components(clip_text: dict[str, Any], t5_vocab: int) -> dict[str, dict[str, Any]]:
    return {"transformer": TINY_TRANSFORMER, "vae": TINY_VAE, "text_encoder": clip_text,
            "text_encoder_2": dict(TINY_T5, vocab_size=t5_vocab)}


def realsize_components(small: bool = False) -> dict[str, dict[str, Any]]:
    return {"transformer": dict(FLUX_DEV, **(SMALL["transformer"] if small else {})), "vae": VAE_FLUX,
            "text_encoder": parts.CLIP_L, "text_encoder_2": dict(T5_XXL, **(SMALL["t5"] if small else {})),
            "scheduler": SCHEDULER_FLUX}


def encode_probes(pipe, prompts: list[str], device, cfg: bool, family) -> dict[str, Any]:
    embeds, pooled, _ = pipe.encode_prompt(prompts, prompt_2=None, device=device,
                                           max_sequence_length=family.text_length)
    return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}


def cached_conditioning(family, batch: int, dtype) -> dict[str, torch.Tensor]:
    """A cached batch's text conditioning, with the real encoders' shapes (on the meta device)."""
    def zeros(*shape):
        return torch.zeros(*shape, dtype=dtype, device="meta")

    return {"prompt_embeds": zeros(batch, family.text_length, 4096), "pooled": zeros(batch, 768),
            "text_ids": zeros(family.text_length, 3)}


ARCHITECTURE = Architecture(
    name="flux", pipeline_class="FluxPipeline", denoiser="transformer", adapter=FluxAdapter, prediction="flow",
    memory=MemoryProfile(resident_params=11_985_228_003, lora_params_per_rank=4_088_896,
                         activations=((4.06, 31.49), (0.27, 2.14)), native=1024, candidates=CANDIDATES),
    assemble=assemble, tiny_components=tiny_components, realsize_components=realsize_components,
    encode_probes=encode_probes, cached_conditioning=cached_conditioning, demo_samplers=("flow_euler",),
    negative_prompt=False, t5_prompt=True, text_encoder_lora=False, nf4_in_low_tier=True, fp8_helps=True)
