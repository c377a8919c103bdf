"""The training step's LoRA layers without peft's per-call overhead.

Under autocast, peft's ``lora.Linear`` computes ``base(x) + lora_B(lora_A(dropout(x))) * scaling`` through
three more module calls, a cast of its input up to the fp32 LoRA weights that autocast casts straight back
down, a multiplication by ``scaling`` each way even when it is 1 (the workbench's alpha = rank) and a final
``.to``. SDXL's UNet has 560 such layers, and its training step is bound by the host on an H100: 262 ms of
kernels in a 631 ms step, each ``mm`` costing 39 µs of CPU to launch for 12 µs of GPU (RESULTS.md,
2026-11-27).

``lean_forward`` is the same arithmetic as plain functional calls, in peft's order (the base first, so
autograd sums each input's gradients in the same order): peft's loss and LoRA gradients bit for bit (tested
on tiny-sdxl and tiny-flux, with and without gradient checkpointing, and traced whole by ``torch.compile``).
Kernels per LoRA layer behind a LayerNorm (bf16 autocast, forward and backward): peft 22, with its input
left in bf16 18, lean 14. A custom ``autograd.Function`` doing the same was tried and dropped: its Python
backward cost more host time than the kernels it saved (RESULTS.md). Outside autocast (an fp32 step, the
probes), and for a layer it does not cover (dropout, DoRA, a quantized base, extra forward arguments), peft's
own forward runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def covered(layer) -> bool:
    """A plain peft ``lora.Linear`` with one active adapter, no dropout, no bias, no variant (DoRA):
    what ``lean_forward`` computes exactly. Quantized bases (bitsandbytes' layers) are subclasses: left to peft."""
    from peft.tuners.lora.layer import Linear

    if type(layer) is not Linear or len(layer.active_adapters) != 1:
        return False
    name = layer.active_adapters[0]
    return (name in layer.lora_A and name not in layer.lora_variant
            and isinstance(layer.lora_dropout[name], torch.nn.Identity)
            and layer.lora_A[name].bias is None and layer.lora_B[name].bias is None
            and isinstance(layer.scaling[name], (int, float)))


def lean_forward(layer):
    """``layer``'s forward: ``base(x) + B(A(x))`` (times ``scaling`` unless it is 1) under autocast, peft's own
    otherwise."""
    peft_forward = layer.forward
    name = layer.active_adapters[0]
    base, a, b, scaling = layer.base_layer, layer.lora_A[name], layer.lora_B[name], float(layer.scaling[name])

    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if args or kwargs or layer.merged or layer.disable_adapters or not torch.is_autocast_enabled(x.device.type):
            return peft_forward(x, *args, **kwargs)
        out = base(x)
        delta = F.linear(F.linear(x, a.weight), b.weight)
        return out + (delta if scaling == 1.0 else delta * scaling)

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
