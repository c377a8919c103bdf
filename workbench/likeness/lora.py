"""The LoRA on the denoiser (and, with ``--train-text-encoder``, on the CLIP text encoders): added to a frozen
base in fp32, as diffusers' DreamBooth-LoRA scripts do, and the step-time switch that keeps peft's layers
from casting their half-precision input up and back down under autocast."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..errors import WorkbenchError
from ..models.architectures import get_architecture
from .config import TrainConfig


def add_lora(pipe, adapter, config: TrainConfig, fam) -> tuple[Any, list, list]:
    """Freeze the base and add the LoRA (fp32 weights, trained under fp16/bf16 autocast); returns the
    denoiser, the LoRA'd text encoders (if trained) and every trainable parameter."""
    from peft import LoraConfig

    for module in (pipe.vae, adapter.denoiser, *adapter.text_encoders()):
        module.requires_grad_(False)
    denoiser = adapter.denoiser
    torch.manual_seed(config.seed)  # the LoRA's gaussian init: same seed, same starting weights
    denoiser.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                                    target_modules=list(fam.lora_targets)))
    for param in denoiser.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    # Train mode from the first step: from_pretrained returns eval mode and the probes switch to train
    # mode afterwards; attention kernels differ between the two, so a resumed run (eval until its first
    # probe) drifted from an uninterrupted one by ~1e-8.
    denoiser.train()
    encoders = add_text_encoder_lora(adapter, config, fam) if config.train_text_encoder else []
    return denoiser, encoders, [p for m in (denoiser, *encoders) for p in m.parameters() if p.requires_grad]


def add_text_encoder_lora(adapter, config, fam) -> list[torch.nn.Module]:
    """LoRA on the CLIP text encoders' attention (SD/SDXL; diffusers' DreamBooth-LoRA targets)."""
    from peft import LoraConfig

    if not get_architecture(adapter.arch).text_encoder_lora:
        from ..models.architectures import MODULES

        able = "/".join(name for name in MODULES if get_architecture(name).text_encoder_lora)
        raise WorkbenchError(f"--train-text-encoder is for {able} families; {fam.name} ({adapter.arch}) trains its "
                             "denoiser only (as diffusers' and ai-toolkit's FLUX LoRA recipes do).")
    encoders = adapter.text_encoders()
    for encoder in encoders:
        encoder.add_adapter(LoraConfig(r=config.text_encoder_rank, lora_alpha=config.text_encoder_rank,
                                       init_lora_weights="gaussian",
                                       target_modules=list(fam.text_encoder_lora_targets)))
        for param in encoder.parameters():
            if param.requires_grad:
                param.data = param.data.float()
        encoder.train()
    return encoders


def lora_layers_of(*models: torch.nn.Module) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for model in models for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def lora_inputs_uncast(layers: list):
    """Inside the training step, peft's LoRA layers leave their input in the base's dtype. By default each
    casts its fp16/bf16 input up to the fp32 LoRA weights, and autocast casts it straight back down for the
    matmul: two copies of the activation per layer and two more in backward, for the same numbers (fp16 ->
    fp32 -> fp16 is exact). Copy kernels were 17 % of the SDXL step's GPU time on an H100, and the step is
    bound by its kernel launches. Only under autocast: outside it (fp32 LoRA on a half base) the cast is
    needed, so each layer's flag is put back after each micro-step. (peft's own ``disable_input_dtype_casting``
    does this by walking every module at each call: too slow for a launch-bound step.) The layers ``lean_lora``
    covers never cast their input under autocast: this is for the others (a quantized base's)."""
    before = [layer.cast_input_dtype_enabled for layer in layers]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    try:
        yield
    finally:
        for layer, enabled in zip(layers, before, strict=True):
            layer.cast_input_dtype_enabled = enabled


def offload_encoders(adapter, device: str) -> None:
    for encoder in adapter.text_encoders():
        encoder.to(device)
