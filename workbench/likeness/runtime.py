"""Where a training runs: the accelerator for its precision, the optimizer, the denoiser's plain forward for
probes, and the memory settings recorded on the card."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError
from .config import TrainConfig
from .memory import config_peak_gb

WEIGHT_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def new_accelerator(config: TrainConfig, cpu: bool, project_dir: Path | None = None):
    """An Accelerator for this run's precision. accelerate keeps one process-wide state and refuses a
    second precision ("AcceleratorState has already been initialized"); a training after another of a
    different precision in one process (an app session, a notebook) resets it. The distributed state
    (``PartialState``) is kept, so this is safe under ``accelerate launch``."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(mixed_precision="no" if config.precision == "fp32" else config.precision,
                       gradient_accumulation_steps=config.gradient_accumulation, cpu=cpu,
                       log_with=config.log_with or None, project_dir=str(project_dir) if project_dir else None)


@contextlib.contextmanager
def plain_forward(model):
    """Render probes as inference does: the denoiser in its weight dtype, not through accelerate's
    autocast wrapper, which returns fp32 latents that a half-precision VAE then refuses ("Input type
    (float) and bias type (c10::BFloat16) should be the same")."""
    wrapped = model.__dict__.get("forward")
    original = getattr(model, "_original_forward", None)
    if wrapped is None or original is None:
        yield
        return
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped


def make_optimizer(params: list, config: TrainConfig, device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA), or bitsandbytes' 8-bit AdamW in the low-memory tier."""
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise WorkbenchError("the low-memory tier uses 8-bit AdamW: `pip install bitsandbytes`, or pass "
                                 "--memory balanced (or --optimizer adamw).") from exc
        return bnb.optim.AdamW8bit(params, lr=config.learning_rate, weight_decay=1e-2)
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2, fused=fused or None)


def memory_report(fam, config: TrainConfig, device: str) -> dict[str, Any]:
    """The memory settings and, on a GPU, the estimated peak beside the free memory at the start: the card's
    record of why the run was set up as it was."""
    report = {k: getattr(config, k) for k in ("memory", "batch_size", "gradient_checkpointing", "optimizer",
                                              "quantize_base", "vae")}
    report["estimate_gb"] = report["free_gb"] = None
    if device.startswith("cuda") and not fam.tiny:
        report["estimate_gb"] = round(config_peak_gb(fam, config), 1)
        report["free_gb"] = round(torch.cuda.mem_get_info(torch.device(device).index or 0)[0] / 1024**3, 1)
    return report
