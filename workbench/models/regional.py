"""Regional ``torch.compile`` of a denoiser, shared by rendering and training.

Only the repeated blocks are compiled (the model's declared ``_repeated_blocks``: FLUX's double and single
blocks, the UNet's ``BasicTransformerBlock``; the transformer and ResNet blocks on a diffusers that declares
none): one graph per block type, reused at every depth, so compiling costs seconds instead of the
minutes a whole-model compile takes, for most of its speed (diffusers' "regional compilation" guide).
Compiling works in place: parameter names, LoRA state dicts and checkpoints are unchanged.
"""

from __future__ import annotations

import torch

from ..errors import WorkbenchError

UNET_BLOCKS = {"BasicTransformerBlock", "ResnetBlock2D"}


def check_compile(device: str) -> None:
    """Fail before anything loads when this device cannot compile: inductor writes Triton kernels on a
    GPU and C++ on a CPU; without them the first step dies deep inside torch."""
    if str(device).startswith("cuda"):
        try:
            import triton  # noqa: F401
        except ImportError as exc:
            raise WorkbenchError("--compile on a GPU needs triton (it ships with torch's CUDA wheels); install "
                                 "it or leave --compile off.") from exc
        return
    if str(device).startswith("cpu"):
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception as exc:  # InvalidCxxCompiler, or a compiler that does not run
            raise WorkbenchError(f"--compile on a CPU needs a C++ compiler for inductor ({exc}); install g++ "
                                 "(apt install g++) or leave --compile off.") from exc


def compile_denoiser(denoiser: torch.nn.Module) -> None:
    """Compile ``denoiser``'s repeated blocks in place."""
    if getattr(denoiser, "_repeated_blocks", None):
        denoiser.compile_repeated_blocks(fullgraph=True)
        return
    for module in denoiser.modules():
        if type(module).__name__ in UNET_BLOCKS:
            module.compile()


def denoiser_of(pipe) -> torch.nn.Module:
    """The pipeline's denoiser: FLUX's transformer or the UNet."""
    return getattr(pipe, "transformer", None) or pipe.unet


def is_compiled(denoiser: torch.nn.Module) -> bool:
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in denoiser.modules())
