"""The bounds of every number a person, a pack or a spec can ask for, in one table.

The CLI (typer's ``min``/``max``, shown in ``--help``), the Python API (pydantic ``Field`` bounds in the
training config, packs and specs, and ``check_value`` in ``generate``) and the app (each control's
minimum and maximum, and the same check before a job is queued) read this table, so a value is refused
the same way everywhere, in one line, before anything is allocated. Upper bounds sit well above what the
field uses (kohya and diffusers' DreamBooth scripts train faces in 400-3000 steps at rank 4-128; samplers
need 20-50 steps; SDXL and FLUX render at 1024 px) and below what would hold a shared GPU, or the app's
one job worker, for hours or allocate past any card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Bound:
    low: float
    high: float
    what: str  # what the number counts, for messages and help texts
    why: str  # why the upper bound is there

    def describe(self) -> str:
        return f"{self.low:g}-{self.high:g}"


LIMITS: dict[str, Bound] = {
    "train_steps": Bound(1, 20_000, "optimizer steps", "faces train in 400-3000; 20,000 is hours on an H100"),
    "rank": Bound(1, 256, "LoRA rank", "face LoRAs use 4-128; rank 256 of SDXL is already 1.5 GB of weights"),
    "resolution": Bound(64, 2048, "training side in px", "the families train at 512-1024 px"),
    "batch_size": Bound(1, 64, "samples per step", "64 SDXL samples at 1024 px need far more than one GPU holds"),
    "gradient_accumulation": Bound(1, 64, "micro-batches per step", "an effective batch beyond 4096 samples "
                                   "helps no LoRA"),
    "checkpoint_every": Bound(1, 20_000, "steps between checkpoints", "at most the longest training"),
    "class_images": Bound(1, 1_000, "class images", "diffusers' DreamBooth uses 100-200"),
    "photos_per_group": Bound(0, 1_000, "photos", "a selfie set holds 10-30 photos"),
    "learning_rate": Bound(1e-7, 1.0, "learning rate", "LoRAs train at 1e-5 to 1e-3"),
    "inference_steps": Bound(1, 1_000, "denoising steps", "samplers converge in 20-50; 1000 is DDPM's full chain"),
    "image_size": Bound(64, 2048, "image side in px", "SDXL and FLUX render at 1024 px; 2048 px is 4x that"),
    "guidance": Bound(0, 30, "guidance scale", "CFG is used at 1-15; FLUX's distilled guidance at 1-10"),
    "ip_scale": Bound(0, 2, "IP-Adapter scale", "IP-Adapter is used at 0.3-1.0"),
    "seed": Bound(0, 2**32 - 1, "seed", "seeds are 32-bit in every UI that shares them (A1111, ComfyUI)"),
    "seeds_per_job": Bound(1, 100, "seeds", "a grid's seeds; more belong in a study"),
    "images_per_job": Bound(1, 2_000, "images", "a 40-image pack is the product; 2,000 is a large study cell"),
    "images_per_prompt": Bound(1, 16, "images per prompt", "a pack's variety comes from its prompts"),
    "prompts_per_pack": Bound(1, 200, "prompts", "packs hold 5-40 prompts"),
    "replicates": Bound(1, 20, "training replicates", "each replicate trains every likeness again"),
    "reference_photos": Bound(0, 100, "reference photos", "a selfie set holds 10-30 photos"),
    "probe_images": Bound(1, 64, "probe images", "a checkpoint is judged on a handful of images"),
    "photo_megabytes": Bound(0.1, 100, "MB per photo", "a phone photo is 2-12 MB; past 100 MB the check refuses "
                             "to read a file"),
    "turn_seconds": Bound(1, 3_600, "seconds a job runs while another person's waits", "an hour's turn is a "
                          "queue in all but name"),
}


def bound(name: str) -> Bound:
    return LIMITS[name]


def check_value(name: str, value: Any, what: str | None = None) -> None:
    """Refuse ``value`` outside ``LIMITS[name]`` with one line naming it, the range and why."""
    limit = LIMITS[name]
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what or limit.what} {value!r} is not a number.") from None
    if not limit.low <= number <= limit.high:
        raise ConfigError(f"{what or limit.what} {value!r} is outside {limit.describe()} ({limit.why}).")


def field(name: str, default: Any = None, **extra: Any) -> Any:
    """A pydantic ``Field`` bounded by ``LIMITS[name]``."""
    from pydantic import Field

    limit = LIMITS[name]
    return Field(default, ge=limit.low, le=limit.high, description=f"{limit.what}, {limit.describe()}", **extra)


def item(name: str) -> Any:
    """The bound as ``Annotated`` metadata, for the items of a list (``list[Annotated[int, item("seed")]]``)."""
    from annotated_types import Interval

    limit = LIMITS[name]
    return Interval(ge=limit.low, le=limit.high)


def option(name: str) -> dict[str, Any]:
    """typer's ``min``/``max`` for an option bounded by ``LIMITS[name]`` (typer shows the range in ``--help``)."""
    limit = LIMITS[name]
    return {"min": limit.low, "max": limit.high}


def app_range(name: str) -> dict[str, Any]:
    """A Gradio number control's ``minimum``/``maximum``."""
    limit = LIMITS[name]
    return {"minimum": limit.low, "maximum": limit.high}
