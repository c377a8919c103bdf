"""The training step's LoRA layers, one autograd node each.

Under autocast, peft's ``lora.Linear`` computes ``base(x) + lora_B(lora_A(dropout(x))) * scaling`` through
three more module calls, a cast of its input up to the fp32 LoRA weights that autocast casts straight back
down, and a multiplication by ``scaling`` each way even when it is 1 (the workbench's alpha = rank). SDXL's
UNet has 560 such layers, and its training step is bound by the host on an H100: 262 ms of kernels in a
631 ms step, each ``mm`` costing 39 µs of CPU to launch for 12 µs of GPU (RESULTS.md, 2026-11-27).

``LoraAdd`` does the same products in the same dtype and order, so the loss and the LoRA gradients are
peft's bit for bit (tested on tiny-sdxl and tiny-flux, with and without gradient checkpointing), and it
skips the input gradient nobody needs (cross-attention's keys and values read the cached text embeddings).
Kernels per LoRA layer and step behind a LayerNorm (bf16 autocast, forward and backward): peft 22, with its
input left in bf16 18, ``LoraAdd`` 14. Real-size SDXL, batch 4, on CPU: plain diffusers dispatches 69,353
leaf ops a step, the trainer 62,553. Outside autocast (an fp32 step, the probes), and for a layer it does
not cover (dropout, DoRA, a quantized base, extra forward arguments), peft's own forward runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class LoraAdd(torch.autograd.Function):
    """``base_out + scaling * (x Aᵀ) Bᵀ`` in the autocast dtype, A and B kept in their own (fp32) dtype."""

    @staticmethod
    def forward(ctx, base_out: torch.Tensor, x: torch.Tensor, a_weight: torch.Tensor, b_weight: torch.Tensor,
                scaling: float, dtype: torch.dtype) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            a, b = a_weight.to(dtype), b_weight.to(dtype)
            x2 = x.to(dtype).reshape(-1, x.shape[-1])
            h = x2 @ a.t()
            delta = h @ b.t()
            if scaling != 1.0:
                delta = delta * scaling
            out = base_out + delta.view(*base_out.shape[:-1], delta.shape[-1])
        ctx.save_for_backward(x2, h, a, b)
        ctx.scaling, ctx.x_shape, ctx.x_dtype, ctx.base_dtype = scaling, x.shape, x.dtype, base_out.dtype
        ctx.weight_dtypes = (a_weight.dtype, b_weight.dtype)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x2, h, a, b = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):
            g = grad.to(h.dtype).reshape(-1, grad.shape[-1])
            if ctx.scaling != 1.0:
                g = g * ctx.scaling
            g_h = g @ b
            grad_b = (h.t() @ g).t().to(ctx.weight_dtypes[1])
            grad_a = (x2.t() @ g_h).t().to(ctx.weight_dtypes[0])
            # an input that needs no gradient gets none, as autograd would skip it (cross-attention's keys and
            # values read the cached text embeddings: 140 of SDXL's 560 layers)
            grad_x = (g_h @ a).view(ctx.x_shape).to(ctx.x_dtype) if ctx.needs_input_grad[1] else None
        return grad.to(ctx.base_dtype) if ctx.needs_input_grad[0] else None, grad_x, grad_a, grad_b, None, None


def covered(layer) -> bool:
    """A plain peft ``lora.Linear`` with one active adapter, no dropout, no bias, no variant (DoRA):
    what ``LoraAdd`` computes exactly. Quantized bases (bitsandbytes' layers) are subclasses: left to peft."""
    from peft.tuners.lora.layer import Linear

    if type(layer) is not Linear or len(layer.active_adapters) != 1:
        return False
    name = layer.active_adapters[0]
    return (name in layer.lora_A and name not in layer.lora_variant
            and isinstance(layer.lora_dropout[name], torch.nn.Identity)
            and layer.lora_A[name].bias is None and layer.lora_B[name].bias is None
            and isinstance(layer.scaling[name], (int, float)))


def lean_forward(layer):
    """``layer``'s forward: ``LoraAdd`` under autocast, peft's own otherwise."""
    peft_forward = layer.forward
    name = layer.active_adapters[0]
    base, a, b, scaling = layer.base_layer, layer.lora_A[name], layer.lora_B[name], float(layer.scaling[name])

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        device = x.device.type
        if args or kwargs or layer.merged or layer.disable_adapters or not torch.is_autocast_enabled(device):
            return peft_forward(x, *args, **kwargs)
        return LoraAdd.apply(base(x), x, a.weight, b.weight, scaling, torch.get_autocast_dtype(device))

    return forward


@contextlib.contextmanager
def lean_lora(layers: list) -> Iterator[int]:
    """Give the covered ``layers`` the lean forward for the duration (a training run: set before its first
    step, so a compiled block traces it once); yields how many are covered. Peft's forward comes back after."""
    chosen = [layer for layer in layers if covered(layer)]
    for layer in chosen:
        layer.forward = lean_forward(layer)
    try:
        yield len(chosen)
    finally:
        for layer in chosen:
            layer.__dict__.pop("forward", None)
