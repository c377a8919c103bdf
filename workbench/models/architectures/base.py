"""What an architecture is, as data and a few functions: the spec every other module asks (pipeline class,
denoiser, how it is trained, what a render or a probe passes, memory constants, kohya export, identity
adapters), and the training ``Adapter`` interface each architecture implements.

An architecture is one module in this package with an ``ARCHITECTURE`` (and its ``Adapter`` subclass),
registered by name in ``__init__.py``; a family (``families.py``) names its architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class MemoryProfile:
    """What the memory planner (``likeness/memory.py``) knows of an architecture, traced on the meta device
    (``likeness/footprint.py``) at rank 16 and checked against the H100's measured peaks.

    ``activations``: GB per sample, fp16/bf16 autocast, as (fixed, per_pixel) with
    ``fixed + per_pixel * (resolution / native)^2``, for (eager, gradient checkpointing). ``text_encoder_*``:
    what ``--train-text-encoder`` adds (its encoders stay on the GPU with their LoRA). ``candidates``: the
    (tier, batch) order ``--memory auto`` tries."""

    resident_params: int  # denoiser + VAE (text encoders are offloaded after caching)
    lora_params_per_rank: int  # on the family's LoRA targets
    activations: tuple[tuple[float, float], tuple[float, float]]
    native: int
    text_encoder_params: int = 0
    text_encoder_lora_per_rank: int = 0
    text_encoder_activations: tuple[float, float] = (0.0, 0.0)
    candidates: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class IPAdapterWeights:
    source: str  # hub id or local dir
    subfolder: str
    weight_name: str
    image_encoder_folder: str


@dataclass(frozen=True)
class Architecture:
    name: str
    pipeline_class: str  # the diffusers pipeline
    denoiser: str  # the pipeline's attribute holding the model that carries the LoRA
    adapter: type  # training: how captions and images are encoded, the loss (an ``Adapter``)
    prediction: Literal["noise", "flow"]  # which samplers can drive it (generate/samplers.py)
    memory: MemoryProfile
    assemble: Callable[..., Any]  # (configs, building) -> a pipeline with fresh random weights
    tiny_components: Callable[..., dict[str, dict[str, Any]]]  # (clip_text, t5_vocab): a tiny family's configs
    realsize_components: Callable[..., dict[str, dict[str, Any]]]  # (small): the published configs
    encode_probes: Callable[..., dict[str, Any]]  # (pipe, prompts, device, cfg, family) -> the probes' embeddings
    cached_conditioning: Callable[..., dict[str, Any]]  # (family, batch, dtype): a cached batch's text tensors
    demo_samplers: tuple[str, ...]
    negative_prompt: bool = True  # renders take a negative prompt (classifier-free guidance)
    t5_prompt: bool = False  # renders and probes pass max_sequence_length (the family's T5 length)
    text_encoder_lora: bool = True  # --train-text-encoder applies
    kohya_base_version: str | None = None  # kohya's ss_base_model_version; None: no kohya-format export
    load_kwargs: dict[str, Any] = field(default_factory=dict)  # from_pretrained extras
    nf4_in_low_tier: bool = False  # the low memory tier loads the denoiser in 4 bits
    fp8_helps: bool = False  # out-of-memory advice mentions --fp8
    ip_adapter: IPAdapterWeights | None = None  # "plus-face": face crops as the image prompt
    faceid: IPAdapterWeights | None = None  # FaceID: the face embedding as the image prompt

    def render_kwargs(self, family) -> dict[str, Any]:
        """What every pipeline call for this architecture passes besides prompts, steps and seeds."""
        return {"max_sequence_length": family.text_length} if self.t5_prompt else {}


class Adapter:
    """Training, for one architecture: encode captions and images once (the caches), name the module that
    carries the LoRA, and compute the denoising loss of a batch (diffusers' train_dreambooth_lora{,_sdxl,
    _flux}.py). The training loop is the same for all."""

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
