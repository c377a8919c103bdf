"""Training configuration as data, with per-family defaults and where each default comes from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import limits
from ..models.attention import Attention
from ..models.families import Family

# Where the defaults come from:
# - steps: Astria's FLUX presets train 27-100 steps per image (min 300); the HF DreamBooth blog
#   found 800-1200 steps right for faces; EasyPhoto caps at 800 (200/photo). We take 80 per
#   training photo, clamped to 400-1200. Tiny families: 20 steps (they only exercise the machinery).
# - rank/alpha 16/16: ai-toolkit's FLUX example (r16/a16); kohya community SDXL face LoRAs use 16-32.
# - learning rate 1e-4: diffusers' train_dreambooth_lora_sdxl/flux examples, ai-toolkit, EasyPhoto.
# - token "ohwx": the rare token kohya and Astria users settled on (few CLIP/T5 associations).
# - text-encoder LoRA off: diffusers' SDXL/FLUX DreamBooth-LoRA examples default to UNet/transformer
#   only; on for SD1.5 faces it helps the token bind (kohya community), at the cost of encoding the
#   captions every step (their cache is then impossible).
# - prior preservation off: Astria and ai-toolkit train faces without it; diffusers' DreamBooth
#   uses weight 1.0 with ~100 class images when it is on ("photo of a <class>" from the base model).
PROBE_PROMPTS = ["photo of {subject}, portrait, looking at the camera, soft light",
                 "photo of {subject} outdoors, smiling, natural light"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str = "tiny-sd"
    base: str | None = None
    steps: int | None = limits.field("train_steps")
    rank: int = limits.field("rank", 16)
    alpha: float | None = None
    learning_rate: float = limits.field("learning_rate", 1e-4)
    batch_size: int | None = limits.field("batch_size")  # None: 1 on a CPU, from free memory on a GPU (memory.py)
    gradient_accumulation: int = limits.field("gradient_accumulation", 1)
    resolution: int | None = limits.field("resolution")
    seed: int = limits.field("seed", 0)
    # One setting for the weights' dtype and autocast: fp16 (with a gradient scaler), bf16 or fp32.
    # Default: fp32 on a CPU, the family's dtype on a GPU. The LoRA itself always trains in fp32.
    precision: Literal["fp16", "bf16", "fp32"] | None = None
    memory: Literal["auto", "full", "balanced", "low"] = "auto"  # see memory.py; auto = from free GPU memory
    gradient_checkpointing: bool | None = None  # None: as the memory tier says
    optimizer: Literal["adamw", "adamw8bit"] | None = None  # None: as the memory tier says
    quantize_base: Literal["none", "nf4"] | None = None  # None: as the memory tier says (nf4: FLUX, low tier)
    # How the VAE encodes the cache and decodes probes: the whole batch, one image at a time, or also in
    # tiles above its native size. None: as the memory tier says (full: batched, balanced: sliced, low: tiled).
    vae: Literal["batched", "sliced", "tiled"] | None = None
    # Regional torch.compile of the denoiser's repeated blocks (models/regional.py): faster steps on a GPU
    # after a one-off compile, reported apart in the manifest (timings.compile_seconds).
    compile: bool = False
    # The LoRA layers' forward as plain functional calls instead of peft's (likeness/lean_lora.py): peft's loss
    # and gradients bit for bit with fewer kernels and 3.8 % less host time on a CPU proxy; off until a GPU
    # A/B shows it helps there (benchmarks/gpu_speed.py --train-variants ...:peft is that A/B).
    lean_lora: bool = False
    # SDPA kernels the training steps may use (models/attention.py): auto = PyTorch's choice; no-cudnn
    # when a GPU training's loss turns NaN or dies in backward; math, the slow reference. None: the family's
    # choice on a GPU (FLUX: no-cudnn), PyTorch's on a CPU.
    attention: Attention | None = None
    max_grad_norm: float | None = Field(1.0, gt=0, le=1e6)  # diffusers' DreamBooth scripts clip at 1.0
    checkpoint_every: int | None = limits.field("checkpoint_every")
    token: str = "ohwx"
    class_word: str = "person"
    # Photo groups (likeness/splits.py): validation picks the checkpoint, test only reports. None: 2/1/0
    # validation photos by set size; no test group under 12 photos. ``splits``: a CSV of file,group.
    validation: int | None = limits.field("photos_per_group")
    test: int | None = limits.field("photos_per_group")
    splits: str | None = None
    # The seed of the photo split (None: the training seed). A study gives every replicate of a person the
    # same split seed, so replicates differ in training noise only and test on the same photos.
    split_seed: int | None = limits.field("seed")
    probe_prompts: list[str] = Field(default_factory=lambda: list(PROBE_PROMPTS), min_length=1, max_length=16)
    probe_seeds: list[Annotated[int, limits.item("seed")]] = Field(default_factory=lambda: [0, 1], max_length=64)
    probe_steps: int | None = limits.field("inference_steps")
    train_text_encoder: bool = False
    text_encoder_rank: int | None = limits.field("rank")
    prior_preservation: bool = False
    class_images: int | None = limits.field("class_images")
    prior_loss_weight: float = Field(1.0, ge=0, le=100)
    ignore_gate: bool = False  # train on every readable photo even if the check refused it (studies)
    buckets: bool = False  # aspect buckets (Family.buckets): crops keep the photo's aspect, not square
    captions: str | None = None  # a captions.csv (file,caption); default: the set's sidecar .txt files
    log_with: list[str] = Field(default_factory=list)  # tensorboard, mlflow, wandb, trackio (tracking.py)

    @classmethod
    def parse(cls, family: str, **options) -> TrainConfig:
        """``TrainConfig(family=..., **options)`` whose errors name every bad option, its allowed values and
        what was given, in one ``ConfigError`` (a CLI user sees one line, not pydantic's report)."""
        from pydantic import ValidationError

        from ..errors import ConfigError

        try:
            return cls(family=family, **options)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}"
                                 + (f" (got {e['input']!r})" if e["type"] != "missing" and "input" in e else "")
                                 for e in exc.errors())
            raise ConfigError(f"training options: {problems}.") from exc

    @model_validator(mode="before")
    @classmethod
    def _legacy_mixed_precision(cls, data):
        """``mixed_precision: no|fp16|bf16`` (earlier configs, accelerate's word) is ``precision``."""
        if isinstance(data, dict) and "held_out" in data:  # the old name of the validation group
            data = dict(data)
            held_out = data.pop("held_out")
            data.setdefault("validation", held_out)
        if isinstance(data, dict) and "mixed_precision" in data:
            data = dict(data)
            legacy = data.pop("mixed_precision")
            if legacy is not None and data.get("precision") is None:
                data["precision"] = {"no": "fp32"}.get(legacy, legacy)
        return data

    def resolve(self, family: Family, n_train: int, device: str, free_memory: int | None = None) -> TrainConfig:
        """Fill every ``None`` with the family default, so the saved config is complete. ``steps``
        counts optimizer updates; by default they cover 80 samples per training photo (400-1200)."""
        from .memory import StepExtras, plan_memory

        precision = self.precision or (
            "fp32" if not device.startswith("cuda") else ("bf16" if family.gpu_dtype == "bfloat16" else "fp16"))
        if precision == "fp16" and not device.startswith(("cuda", "mps")):
            from ..errors import ConfigError

            raise ConfigError(f"precision fp16 needs a GPU (device is {device}); use bf16 or fp32 on a CPU.")
        resolution = self.resolution or family.resolution
        plan = plan_memory(family, resolution, precision, device, free_memory, self.memory, self.batch_size, self.rank,
                           StepExtras.of(self))
        batch = self.batch_size or plan.batch_size
        samples = 20 if family.tiny else min(1200, max(400, 80 * n_train))
        steps = self.steps or max(1, -(-samples // (batch * self.gradient_accumulation)))
        return self.model_copy(update=dict(
            steps=steps, alpha=self.alpha or float(self.rank), resolution=resolution, precision=precision,
            memory=plan.tier, batch_size=batch,
            gradient_checkpointing=plan.gradient_checkpointing if self.gradient_checkpointing is None
            else self.gradient_checkpointing,
            optimizer=self.optimizer or plan.optimizer,
            quantize_base=self.quantize_base or plan.quantize_base or "none", vae=self.vae or plan.vae,
            checkpoint_every=self.checkpoint_every or max(1, steps // 4),
            attention=self.attention or (family.train_attention if device.startswith("cuda") else "auto"),
            probe_steps=self.probe_steps or family.steps, text_encoder_rank=self.text_encoder_rank or self.rank,
            class_images=self.class_images or (4 if family.tiny else max(50, 2 * n_train))))
