"""A training step's GPU memory, measured on a CPU: the trainer's own step traced on PyTorch's meta device.

Meta tensors have shapes and dtypes but no data, so the real-size denoiser (FLUX's 11.9 B parameters too)
runs forward and backward in seconds and holds no memory. A dispatch mode adds up the bytes of the
tensors alive after every op; their peak is what ``torch.cuda.max_memory_allocated`` reports for the same
step, less the kernels' workspaces and the allocator's rounding. On the H100 (benchmarks/RESULTS.md) the
trace of SDXL at 1024 px, batch 4, came within 0.5 % of the trainer's measured 34.4 GB peak, and SD1.5 at
512 px within 1.4 % of 6.24 GB. The memory tiers' numbers come from here (``memory.py``;
``benchmarks/training_memory.py`` prints the table). ``gpu_kernels_on_meta`` reproduces what makes a GPU
step differ from a plain meta run: autocast's casts and the fused attention kernels.

Added from the parameter counts, not traced: the weights (frozen denoiser and VAE; a 4-bit base at its
packed size, since a quantized base is dequantized layer by layer and its activations are the same) and
the LoRA's fp32 weights, gradients and optimizer state (the trace may see some of the gradients too: a
double count of at most 0.25 GB, for FLUX).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from ..models.architectures import adapter_for, get_architecture
from ..models.families import Family
from ..models.realsize import build_realsize_pipeline
from .config import TrainConfig
from .memory import GB, NF4_BYTES, OPTIMIZER_BYTES

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class LiveTensors(TorchDispatchMode):
    """Bytes of the tensor storages created inside the mode and still alive; ``peak`` is their maximum.
    Storages made before (weights, inputs) count nothing, also when an op returns a view of them."""

    def __init__(self, existing=()):
        super().__init__()
        self.sizes = WeakIdKeyDictionary()
        self.live = self.peak = 0
        for tensor in existing:
            self.sizes[tensor.untyped_storage()] = 0

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if storage not in self.sizes:
                    self.sizes[storage] = nbytes = storage.nbytes()
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._freed, nbytes)
        return out


@contextlib.contextmanager
def gpu_kernels_on_meta(dtype):
    """Run ``torch.nn.functional`` as a CUDA training step under autocast would, on meta tensors:

    - autocast's casts (torch.amp, CUDA op lists): linear and convolutions in ``dtype``, layer and group
      norms and the MSE loss in fp32; each cast is a new tensor that autograd may keep, as on the GPU;
    - attention as a fused kernel (flash, cuDNN, memory-efficient) stores it: output and log-sum-exp, never
      the L x L matrix of the math path that PyTorch takes on the meta device.

    Functions are swapped in the module (and restored), not caught by a mode: gradient checkpointing
    recomputes its blocks inside backward, where a Python mode is not active. The swap is process-wide, so
    traces hold a lock (one at a time) and only run where nothing else computes: the memory planner reads
    the traced numbers from each architecture's profile and never traces in a serving process (the app,
    a job worker); the trace runs in tests and ``benchmarks/training_memory.py``."""
    with _TRACING:
        yield from _swapped(dtype)


_TRACING = threading.Lock()


def _swapped(dtype):
    functional = torch.nn.functional
    low = ("linear", "conv1d", "conv2d")
    high = ("layer_norm", "group_norm", "mse_loss")
    saved = {name: getattr(functional, name) for name in (*low, *high, "scaled_dot_product_attention")}

    def cast(fn, to):
        def wrapped(*args, **kwargs):
            args = [a.to(to) if _castable(a, to) else a for a in args]
            kwargs = {k: v.to(to) if _castable(v, to) else v for k, v in kwargs.items()}
            return fn(*args, **kwargs)
        return wrapped

    def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if attn_mask is not None:
            raise NotImplementedError("traced attention with a mask")
        query, key, value = (t.to(dtype) if _castable(t, dtype) else t for t in (query, key, value))
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal,
                                                                           scale=scale)[0]

    try:
        for name in low:
            setattr(functional, name, cast(saved[name], dtype))
        for name in high:
            setattr(functional, name, cast(saved[name], torch.float32))
        functional.scaled_dot_product_attention = attention
        yield
    finally:
        for name, fn in saved.items():
            setattr(functional, name, fn)


def _castable(value, dtype) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype


@dataclass(frozen=True)
class Footprint:
    """GB of one training step at its peak, by what holds them."""

    base_gb: float  # frozen denoiser + VAE (+ the text encoders when they train; else they leave the GPU)
    lora_gb: float  # fp32 LoRA weights, gradients and optimizer state
    activations_gb: float  # the traced forward and backward, beyond the weights
    lora_parameters: int

    @property
    def total_gb(self) -> float:
        return self.base_gb + self.lora_gb + self.activations_gb


def step_footprint(family: Family, resolution: int, batch: int, precision: str = "bf16",
                   gradient_checkpointing: bool = False, rank: int = 16, optimizer: str = "adamw",
                   quantize_base: str | None = None, train_text_encoder: bool = False,
                   prior_preservation: bool = False, uncast_lora_inputs: bool = True) -> Footprint:
    """Trace one training step of ``family``'s real-size denoiser (its LoRA targets, square
    ``resolution``, ``batch`` samples) on the meta device; seconds on a CPU, no memory. With
    ``train_text_encoder`` the CLIP encoders stay on the GPU with their own LoRA and encode the captions
    inside the step, as the trainer does then. With ``prior_preservation`` a class batch's loss joins the
    step's before the one backward, as in the trainer: both graphs are alive at once.
    ``uncast_lora_inputs=False`` traces the step as it was before 2026-11-27 (peft casting each LoRA
    layer's input up to fp32), the step whose peaks the H100 measured. The trace runs peft's forward: the
    trainer's ``lean_lora`` keeps the same tensors for backward (traced once with it: the same peaks, SDXL
    1024 b1 6.833 GB, FLUX 512 b1 11.937)."""
    from .lora import add_lora, lora_inputs_uncast, lora_layers_of

    dtype = DTYPES[precision]
    pipe = build_realsize_pipeline(family, device="meta", dtype=dtype)
    adapter = adapter_for(family.arch, pipe, family.text_length)
    config = TrainConfig(family=family.name, rank=rank, alpha=float(rank), text_encoder_rank=rank,
                         gradient_checkpointing=gradient_checkpointing, train_text_encoder=train_text_encoder)
    denoiser, encoders, params = add_lora(pipe, adapter, config, family)
    lora_parameters = sum(p.numel() for p in params)
    trained = [denoiser, *encoders]
    weight_bytes = NF4_BYTES if quantize_base == "nf4" else dtype.itemsize
    frozen = sum(p.numel() for p in denoiser.parameters() if not p.requires_grad) * weight_bytes
    frozen += sum(p.numel() * p.element_size() for m in (pipe.vae, *encoders) for p in m.parameters()
                  if not p.requires_grad)
    lora = lora_parameters * (4 + 4 + OPTIMIZER_BYTES[optimizer])

    latent = resolution // pipe.vae_scale_factor
    channels = pipe.vae.config.latent_channels
    latents = torch.zeros(batch, channels, latent, latent, dtype=dtype, device="meta")
    existing = [*(t for m in trained for t in (*m.parameters(), *m.buffers())), latents]
    with gpu_kernels_on_meta(dtype), LiveTensors(existing) as live, \
            lora_inputs_uncast(lora_layers_of(*trained) if uncast_lora_inputs else []):
        if encoders:
            cond = adapter.encode_captions_with_grad(["photo of ohwx person"] * batch)
        else:
            cond = conditioning(family, batch, dtype)  # cached before training: counted as already there
            for tensor in cond.values():
                live.sizes[tensor.untyped_storage()] = 0
        loss = adapter.loss(denoiser, latents, cond, torch.Generator().manual_seed(0))
        if prior_preservation:  # the class images' latents and captions are cached like the photos'
            loss = loss + adapter.loss(denoiser, latents, cond, torch.Generator().manual_seed(1))
        loss.backward()
    return Footprint(base_gb=frozen / GB, lora_gb=lora / GB, activations_gb=live.peak / GB,
                     lora_parameters=lora_parameters)


def conditioning(family: Family, batch: int, dtype) -> dict[str, torch.Tensor]:
    """The cached text conditioning a training batch carries, with the real encoders' shapes."""
    return get_architecture(family.arch).cached_conditioning(family, batch, dtype)
