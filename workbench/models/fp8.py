"""Opt-in fp8 rendering: the denoiser's block linears as float8 (e4m3) matrix products.

Why: on Hopper/Ada GPUs a float8 matmul has twice bf16's peak, and FLUX spends most of a step in the
linears of its 57 blocks. Weights are quantized once per output row (``scale = amax / 448``, the
e4m3 maximum), activations per token at each call, and ``torch._scaled_mm`` multiplies with both
row-wise scales, returning the input's dtype, the recipe torchao calls "float8 dynamic, row-wise".
It is not exact: the difference from bf16 is measured and reported (``benchmarks/gpu_speed.py``),
never assumed. Only linears inside the repeated blocks change (the embedders, the modulation of the
final norm and the output projection stay in bf16), and only those whose sides are multiples of 16,
which the fp8 kernels need. Apply it after the LoRA is fused, before compiling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

E4M3_MAX = 448.0
BLOCK_CLASSES = {"BasicTransformerBlock"}  # UNet families; FLUX declares its own ``_repeated_blocks``


class Float8Linear(nn.Module):
    """``nn.Linear`` with its weight in float8 e4m3 and one scale per output row."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / E4M3_MAX
        # Stored transposed, column-major as _scaled_mm wants its second operand.
        self.register_buffer("weight_t", (weight / scale).to(torch.float8_e4m3fn).t())
        self.register_buffer("scale_t", scale.t().contiguous())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        scale = rows.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
        quantized = (rows.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
        # Row-wise scaling on CUDA returns bf16 only; an fp16 model gets its dtype back after.
        dtype = torch.bfloat16 if x.is_cuda else x.dtype
        # Fast accumulation, as inference fp8 linears use it (torchao's Float8LinearInference, fbgemm's
        # row-wise GEMMs): Hopper skips the periodic promotion of partial sums, faster for a small error
        # that the measured difference from bf16 includes. No effect on a CPU.
        out = torch._scaled_mm(quantized, self.weight_t, scale_a=scale, scale_b=self.scale_t, out_dtype=dtype,
                               use_fast_accum=True)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, float8_e4m3fn row-wise"


def check_fp8_device(device: torch.device | str) -> None:
    """fp8 matmuls need compute capability 8.9+ (Ada, Hopper) on CUDA; the CPU runs them (slowly: for
    tests). Anything else is refused with the reason, before a model is touched."""
    device = torch.device(device)
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if capability < (8, 9):
            name = torch.cuda.get_device_name(device)
            raise ConfigError(f"fp8 rendering needs an Ada or Hopper GPU (compute capability 8.9+); {name} is "
                              f"{capability[0]}.{capability[1]}. Render without --fp8.")
    elif device.type != "cpu":
        raise ConfigError(f"fp8 rendering runs on CUDA (8.9+) or the CPU, not {device.type}.")
    try:  # the kernel itself: a torch build or driver without row-wise fp8 says so here, not mid-render
        probe = Float8Linear(nn.Linear(16, 16, bias=False).to(device))
        probe(torch.ones(16, 16, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32))
    except RuntimeError as error:
        raise ConfigError(f"this torch build cannot run row-wise fp8 matmuls on {device}: {error}. "
                          "Render without --fp8.") from error


def uses_fp8(denoiser: Any) -> bool:
    """Whether ``quantize_fp8`` has run on this denoiser (read from the modules, never tracked apart)."""
    return any(isinstance(module, Float8Linear) for module in denoiser.modules())


def quantize_fp8(denoiser: Any) -> int:
    """Swap the linears of the denoiser's repeated blocks for ``Float8Linear``; returns how many."""
    block_names = set(getattr(denoiser, "_repeated_blocks", None) or BLOCK_CLASSES)
    swapped = 0
    for block in [m for m in denoiser.modules() if type(m).__name__ in block_names]:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear and child.in_features % 16 == 0 and child.out_features % 16 == 0:
                    setattr(parent, name, Float8Linear(child))
                    swapped += 1
    if not swapped:
        raise ConfigError(f"{type(denoiser).__name__} has no block linears fp8 can take.")
    return swapped
