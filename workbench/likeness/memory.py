"""Memory tiers for training: what to turn on so a family trains on the card at hand.

``full``: nothing traded. ``balanced``: gradient checkpointing (diffusers' examples: about half the
activation memory, a slower step) and a sliced VAE (latents cached and probes decoded one image at a
time). ``low``: also 8-bit AdamW (bitsandbytes), a tiled VAE (above its native size) and, for FLUX, a 4-bit
NF4 base as in diffusers' FLUX QLoRA recipe. The text encoders always leave the GPU once their captions and
the probe prompts are encoded (train.py). ``auto`` takes the first (tier, batch) of the family's
candidates (its MemoryProfile) whose estimate fits in 90 % of the free GPU memory; the card records the tier
and the estimate.

The estimates come from each architecture's ``MemoryProfile`` (``models/architectures/``): the trainer's own
step traced on the meta device (``footprint.py``), which reproduced the H100's measured peaks within 2 %
(``benchmarks/training_memory.py`` re-traces the profiles and prints the comparison). Activations per sample
grow with the pixels, plus, for FLUX, a part for its 512 text tokens that does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..models.families import Family

GB = 1024**3
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
NF4_BYTES = 0.55  # per parameter: 4-bit codes and block scales (bitsandbytes, double quantisation)
OPTIMIZER_BYTES = {"adamw": 8, "adamw8bit": 2}  # the two moments per trainable parameter
# fp32 activations: the trace gives 1.45x FLUX's bf16 ones (much of an autocast step is fp32 already); 2 bounds it.
FP32_ACTIVATIONS = 2.0
SLACK_GB = 1.0  # cuBLAS/cuDNN workspaces, probe renders, the cached latents and embeddings
TIERS = ("full", "balanced", "low")


def profile_of(family: Family):
    """(the architecture's ``MemoryProfile``, whether its low tier loads a 4-bit base)."""
    from ..models.architectures import get_architecture

    architecture = get_architecture(family.arch)
    return architecture.memory, architecture.nf4_in_low_tier


@dataclass(frozen=True)
class StepExtras:
    """What a training step holds besides the denoiser and its LoRA batch (TrainConfig's options)."""

    text_encoders: bool = False  # --train-text-encoder: the CLIP encoders stay on the GPU with their LoRA
    prior_preservation: bool = False  # a class batch's loss joins the step's before backward: ~2x activations

    @classmethod
    def of(cls, config) -> StepExtras:
        return cls(bool(config.train_text_encoder), bool(config.prior_preservation))


NO_EXTRAS = StepExtras()


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


def estimate_gb(family: Family, resolution: int, precision: str, tier: str, batch: int, rank: int = 16,
                extras: StepExtras = NO_EXTRAS) -> float:
    """Estimated training peak in GB (GiB, as torch reports it) for ``tier`` at ``batch`` samples per step."""
    return peak_gb(family, resolution, precision, batch, checkpointing=tier != "full",
                   optimizer="adamw8bit" if tier == "low" else "adamw",
                   quantize_base="nf4" if tier == "low" and profile_of(family)[1] else None, rank=rank,
                   extras=extras)


def peak_gb(family: Family, resolution: int, precision: str, batch: int, checkpointing: bool,
            optimizer: str = "adamw", quantize_base: str | None = None, rank: int = 16,
            extras: StepExtras = NO_EXTRAS) -> float:
    """Estimated training peak in GB for these settings (a tier's, or a config's own) and ``extras`` (a
    text-encoder LoRA at the same rank; prior preservation, which traces at just under twice the batch)."""
    profile = profile_of(family)[0]
    weight_bytes = NF4_BYTES if quantize_base == "nf4" else BYTES[precision]
    weights = profile.resident_params * weight_bytes
    lora_params = (profile.lora_params_per_rank + profile.text_encoder_lora_per_rank * extras.text_encoders) * rank
    lora = lora_params * (4 + 4 + OPTIMIZER_BYTES[optimizer])
    fixed, per_pixel = profile.activations[checkpointing]
    per_sample = fixed + per_pixel * (resolution / profile.native) ** 2
    if extras.text_encoders:
        weights += profile.text_encoder_params * BYTES[precision]
        per_sample += profile.text_encoder_activations[checkpointing]
    if precision == "fp32":
        per_sample *= FP32_ACTIVATIONS
    samples = batch * (2 if extras.prior_preservation else 1)  # the class batch's graph is alive too
    return (weights + lora) / GB + per_sample * samples + SLACK_GB


def config_peak_gb(family: Family, config) -> float:
    """``peak_gb`` of a resolved ``TrainConfig``, overrides of its tier included."""
    return peak_gb(family, config.resolution, config.precision, config.batch_size, bool(config.gradient_checkpointing),
                   config.optimizer, None if config.quantize_base == "none" else config.quantize_base, config.rank,
                   StepExtras.of(config))


def out_of_memory_advice(family: Family, config, where: str, last_checkpoint: int | None) -> str:
    """What to rerun with after CUDA ran out of memory. Gradient checkpointing at the same batch resumes
    from the last checkpoint (only memory changes); a smaller batch or the 8-bit optimizer changes what a
    step trains, so it starts in a new folder (``train.check_resumable``)."""
    estimate = config_peak_gb(family, config)
    said = (f"{family.name} ran out of GPU memory {where} (memory tier {config.memory}, batch {config.batch_size}, "
            f"{config.resolution} px, {config.precision}; estimated peak {estimate:.1f} GB).")
    if not config.gradient_checkpointing:
        lower = peak_gb(family, config.resolution, config.precision, config.batch_size, True, config.optimizer,
                        None if config.quantize_base == "none" else config.quantize_base, config.rank,
                        StepExtras.of(config))
        fix = (f"Rerun the same command with --memory balanced --batch-size {config.batch_size} (gradient "
               f"checkpointing, estimated {lower:.1f} GB)"
               + (f"; it resumes from step {last_checkpoint}." if last_checkpoint else "."))
    else:
        smaller = [(tier, batch, estimate_gb(family, config.resolution, config.precision, tier, batch, config.rank,
                                             StepExtras.of(config)))
                   for tier, batch in profile_of(family)[0].candidates]
        smaller = [(tier, batch, gb) for tier, batch, gb in smaller if gb < estimate]
        fix = (f"Train into a new --out with --memory {smaller[0][0]} --batch-size {smaller[0][1]} (estimated "
               f"{smaller[0][2]:.1f} GB); a smaller batch or the 8-bit optimizer cannot resume these checkpoints."
               if smaller else "Lower --resolution.")
    return f"{said} {fix} Other processes on the GPU (an app, a notebook) take memory too: nvidia-smi lists them."


def plan_memory(family: Family, resolution: int, precision: str, device: str, free_bytes: int | None = None,
                tier: str = "auto", batch_size: int | None = None, rank: int = 16,
                extras: StepExtras = NO_EXTRAS) -> MemoryPlan:
    """The tier and batch size for this family on this device (``free_bytes`` is read from the GPU when None);
    ``extras``: a text-encoder LoRA, prior preservation (``StepExtras.of(config)``)."""
    if tier not in ("auto", *TIERS):
        raise ConfigError(f"memory tier {tier!r}: expected auto, full, balanced or low.")
    if not device.startswith("cuda"):
        chosen = "full" if tier == "auto" else tier
        return _plan(family, chosen, batch_size or 1, None, None, resolution, precision, rank, extras)
    if free_bytes is None:
        import torch

        free_bytes = torch.cuda.mem_get_info(int(device.partition(":")[2] or 0))[0]
    free = free_bytes / GB
    budget = 0.9 * free
    candidates = [(name, batch) for name, batch in profile_of(family)[0].candidates if tier in ("auto", name)]
    if batch_size:
        candidates = list(dict.fromkeys((name, batch_size) for name, _ in candidates))
    for name, batch in candidates:
        if estimate_gb(family, resolution, precision, name, batch, rank, extras) <= budget:
            return _plan(family, name, batch, free, budget, resolution, precision, rank, extras)
    if tier != "auto":  # the user asked for this tier: try it, and say the estimate in the card
        return _plan(family, tier, batch_size or 1, free, budget, resolution, precision, rank, extras)
    need = estimate_gb(family, resolution, precision, "low", batch_size or 1, rank, extras)
    raise ConfigError(f"{family.name} at {resolution}px needs about {need:.0f} GB even in the low-memory tier; "
                      f"this GPU has {free:.0f} GB free. Lower --resolution or free the GPU.")


def _plan(family: Family, tier: str, batch: int, free: float | None, budget: float | None, resolution: int,
          precision: str, rank: int, extras: StepExtras = NO_EXTRAS) -> MemoryPlan:
    return MemoryPlan(tier=tier, batch_size=batch, gradient_checkpointing=tier != "full",
                      optimizer="adamw8bit" if tier == "low" else "adamw",
                      quantize_base="nf4" if tier == "low" and profile_of(family)[1] else None,
                      vae={"full": "batched", "balanced": "sliced", "low": "tiled"}[tier],
                      estimate_gb=round(estimate_gb(family, resolution, precision, tier, batch, rank, extras), 1)
                      if free is not None else None, free_gb=round(free, 1) if free is not None else None)


def memory_table(family: Family, resolution: int | None = None, precision: str | None = None, rank: int = 16,
                 free_gb: float | None = None, extras: StepExtras = NO_EXTRAS):
    """Every (tier, batch) ``auto`` considers for ``family``, in its search order, with the estimated peak;
    given the GPU's free memory, also whether each fits and which one ``auto`` takes (a pandas table: what a
    card can train, before renting or buying it)."""
    import pandas as pd

    if family.tiny or family.name.endswith("-small"):  # the estimates are the real architectures' (realsize.py)
        raise ConfigError(f"{family.name} is a reduced test family; memory plans are for the real families: sd15, "
                          "sdxl, flux and their full-size random-* builds.")
    resolution = resolution or family.resolution
    precision = precision or ("bf16" if family.gpu_dtype == "bfloat16" else "fp16")
    if precision not in BYTES:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(BYTES)}.")
    chosen = None
    if free_gb is not None:
        try:
            plan = plan_memory(family, resolution, precision, "cuda", int(free_gb * GB), rank=rank,
                               extras=extras)
            chosen = (plan.tier, plan.batch_size)
        except ConfigError:
            pass
    rows = []
    for tier, batch in profile_of(family)[0].candidates:
        plan = _plan(family, tier, batch, None, None, resolution, precision, rank, extras)
        estimate = estimate_gb(family, resolution, precision, tier, batch, rank, extras)
        rows.append({"tier": tier, "batch_size": batch, "gradient_checkpointing": plan.gradient_checkpointing,
                     "optimizer": plan.optimizer, "base": plan.quantize_base or precision,
                     "estimate_gb": round(estimate, 1),
                     "fits": None if free_gb is None else estimate <= 0.9 * free_gb,
                     "auto": (tier, batch) == chosen})
    return pd.DataFrame(rows)
