"""Memory tiers for training: what to turn on so a family trains on the card at hand.

``full``: nothing traded, the largest batch (up to 4) that fits. ``balanced``: gradient checkpointing
(diffusers' examples: about half the activation memory for ~1.3-2x step time) and a sliced VAE (latents
cached and probes decoded one image at a time). ``low``: also 8-bit AdamW (bitsandbytes), a tiled VAE
(above its native size) and, for FLUX, a 4-bit NF4 base as in diffusers' FLUX QLoRA recipe. The text
encoders always leave the GPU once their captions and the probe prompts are encoded (train.py). ``auto``
picks the first tier whose estimate fits in 90 % of the free GPU memory; the card records the tier and the
estimate.

The estimates are coarse on purpose (weights from the real parameter counts, activations per sample from
measurements of plain diffusers training steps at native resolution, scaled by pixel count); they choose a
tier, they are not a promise. Measured peaks go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..models.families import Family

GB = 1024**3
# Parameters resident during training (denoiser + VAE; text encoders are offloaded after caching), in billions.
RESIDENT_PARAMS = {"sd": 0.94, "sdxl": 2.65, "flux": 12.0}
# Activation memory per sample at the family's native resolution, half precision, without / with
# gradient checkpointing (GB). SDXL 1024^2: ~9 GB per sample eager (diffusers' SDXL LoRA script at b1 peaks
# near 20 GB with weights and optimizer state).
ACTIVATIONS = {"sd": (2.5, 0.8), "sdxl": (9.0, 2.5), "flux": (14.0, 3.0)}
NATIVE = {"sd": 512, "sdxl": 1024, "flux": 1024}
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
TIERS = ("full", "balanced", "low")


@dataclass(frozen=True)
class MemoryPlan:
    tier: str
    batch_size: int
    gradient_checkpointing: bool
    optimizer: str  # adamw | adamw8bit
    quantize_base: str | None  # None | "nf4"
    vae: str  # batched | sliced | tiled (tiled is sliced too)
    estimate_gb: float | None  # estimated peak for the chosen settings (None on a CPU)
    free_gb: float | None


def estimate_gb(family: Family, resolution: int, precision: str, tier: str, batch: int) -> float:
    """Estimated training peak in GB for ``tier`` at ``batch`` samples per step."""
    arch = family.arch
    weight_bytes = 0.55 if (tier == "low" and arch == "flux") else BYTES[precision]  # NF4 ~ 4.4 bits
    weights = RESIDENT_PARAMS[arch] * weight_bytes
    eager, checkpointed = ACTIVATIONS[arch]
    per_sample = (eager if tier == "full" else checkpointed) * (resolution / NATIVE[arch]) ** 2
    if precision == "fp32":
        per_sample *= 2
    return weights + per_sample * batch + 1.5  # + LoRA, optimizer state, CUDA context, allocator slack


def plan_memory(family: Family, resolution: int, precision: str, device: str, free_bytes: int | None = None,
                tier: str = "auto", batch_size: int | None = None) -> MemoryPlan:
    """The tier and batch size for this family on this device (``free_bytes`` is read from the GPU when None)."""
    if tier not in ("auto", *TIERS):
        raise ConfigError(f"memory tier {tier!r}: expected auto, full, balanced or low.")
    if not device.startswith("cuda"):
        chosen = "full" if tier == "auto" else tier
        return _plan(family, chosen, batch_size or 1, None, None, resolution, precision)
    if free_bytes is None:
        import torch

        free_bytes = torch.cuda.mem_get_info(int(device.partition(":")[2] or 0))[0]
    free = free_bytes / GB
    budget = 0.9 * free
    candidates = TIERS if tier == "auto" else (tier,)
    for name in candidates:
        for batch in ([batch_size] if batch_size else ((4, 2, 1) if name == "full" else (1,))):
            if estimate_gb(family, resolution, precision, name, batch) <= budget:
                return _plan(family, name, batch, free, budget, resolution, precision)
    if tier != "auto":  # the user asked for this tier: try it, and say the estimate in the card
        return _plan(family, tier, batch_size or 1, free, budget, resolution, precision)
    need = estimate_gb(family, resolution, precision, "low", 1)
    raise ConfigError(f"{family.name} at {resolution}px needs about {need:.0f} GB even in the low-memory tier; "
                      f"this GPU has {free:.0f} GB free. Lower --resolution or free the GPU.")


def _plan(family: Family, tier: str, batch: int, free: float | None, budget: float | None, resolution: int,
          precision: str) -> MemoryPlan:
    return MemoryPlan(tier=tier, batch_size=batch, gradient_checkpointing=tier != "full",
                      optimizer="adamw8bit" if tier == "low" else "adamw",
                      quantize_base="nf4" if tier == "low" and family.arch == "flux" else None,
                      vae={"full": "batched", "balanced": "sliced", "low": "tiled"}[tier],
                      estimate_gb=round(estimate_gb(family, resolution, precision, tier, batch), 1)
                      if free is not None else None, free_gb=round(free, 1) if free is not None else None)
