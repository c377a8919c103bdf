"""Which scaled-dot-product-attention kernels a training step may use.

SDXL's UNet and FLUX's transformer both call ``F.scaled_dot_product_attention`` (FLUX through diffusers'
dispatcher, whose default is that same function); PyTorch then picks a kernel: cuDNN, flash,
memory-efficient or math. The backward pass runs the kernel its forward chose, so choosing around the
forward is enough. ``auto`` keeps PyTorch's choice. ``no-cudnn`` leaves out the cuDNN kernel, whose
backward has had NaN bugs on Hopper cards (pytorch/pytorch#196678, NVIDIA/cudnn-frontend#1072); it is
the first thing to try when a GPU training's loss turns NaN or dies in backward. ``math`` is the
reference kernel: slow, for checking the others.
"""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

Attention = Literal["auto", "no-cudnn", "math"]
CHOICES: tuple[str, ...] = get_args(Attention)


def attention_kernels(choice: str) -> contextlib.AbstractContextManager:
    """A context in which SDPA uses only the kernels ``choice`` allows."""
    if choice == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if choice == "no-cudnn":
        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    if choice == "math":
        return sdpa_kernel([SDPBackend.MATH])
    raise ValueError(f"attention {choice!r}: expected one of {', '.join(CHOICES)}.")
