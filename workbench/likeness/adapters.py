"""What differs between architectures during training, in one small adapter each.

An adapter knows how to encode captions and images once (for the caches), which module gets the
LoRA, and how to compute the denoising loss for a batch. The training loop is the same for all.
Losses follow diffusers' train_dreambooth_lora{,_sdxl,_flux}.py examples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def upload(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor.to(like)`` (device and dtype) without making the host wait. Per-step randomness is drawn on
    the CPU from a seeded generator (a resumed run draws what the original would); copying pageable memory
    to a GPU first synchronizes the stream (CUDA's API sync rules), so every such copy in a step stopped
    the host from queueing work ahead of the GPU. A pinned buffer copied with ``non_blocking`` does not;
    PyTorch's pinned-memory cache keeps it alive until the copy has run."""
    if like.device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(like.device, like.dtype if tensor.is_floating_point() else tensor.dtype)
    return tensor.pin_memory().to(like.device, like.dtype if tensor.is_floating_point() else tensor.dtype,
                                  non_blocking=True)


class Adapter:
    arch = ""

    def __init__(self, pipe: Any):
        self.pipe = pipe

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.unet

    def lora_owner_kwarg(self) -> str:
        return "unet_lora_layers"

    def lora_state_to_save(self, peft_state: dict, convert) -> dict:
        """The denoiser's LoRA tensors as ``save_lora_weights`` wants them (diffusers' SD/SDXL scripts
        convert peft keys to diffusers' names)."""
        return convert(peft_state)

    def text_encoders(self) -> list[torch.nn.Module]:
        return [m for m in (getattr(self.pipe, "text_encoder", None), getattr(self.pipe, "text_encoder_2", None))
                if m is not None]

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Cached training latents. A VAE whose config says ``force_upcast`` (SDXL's, FLUX's) encodes in
        fp32, as diffusers' SDXL scripts do: SDXL's VAE overflows to inf/NaN in fp16. The latents are
        checked, because NaN latents train a LoRA that renders black."""
        vae = self.pipe.vae
        dtype = vae.dtype
        upcast = dtype != torch.float32 and getattr(vae.config, "force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        finally:
            if upcast:
                vae.to(dtype)
        if not torch.isfinite(latents).all():
            raise FloatingPointError(f"the VAE produced non-finite latents in {vae.dtype}; train with --precision "
                                     "fp32 or give a VAE that is stable in half precision (the fp16-fix VAE).")
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((latents - shift) * vae.config.scaling_factor).to(dtype)

    @torch.no_grad()
    def encode_captions(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Cached once before training (the usual case: the text encoders stay frozen)."""
        return self.encode_captions_with_grad(captions)

    def encode_captions_with_grad(self, captions: list[str]) -> dict[str, torch.Tensor]:
        """Used every step instead when the text encoders carry a LoRA too."""
        raise NotImplementedError

    def text_encoder_lora_kwargs(self) -> list[str]:
        return ["text_encoder_lora_layers", "text_encoder_2_lora_layers"][:len(self.text_encoders())]

    def loss(self, model: torch.nn.Module, latents: torch.Tensor, cond: dict[str, torch.Tensor],
             generator: torch.Generator) -> torch.Tensor:
        """``model`` is the (possibly accelerate-wrapped) denoiser."""
        raise NotImplementedError


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


ADAPTERS = {"sd": UNetAdapter, "sdxl": SDXLAdapter, "flux": FluxAdapter}


def adapter_for(arch: str, pipe: Any, text_length: int | None = None) -> Adapter:
    adapter = ADAPTERS[arch](pipe)
    if text_length:
        adapter.text_length = text_length
    return adapter
