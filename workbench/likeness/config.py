"""Training configuration as data, with per-family defaults and where each default comes from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
    steps: int | None = Field(None, ge=1)
    rank: int = Field(16, ge=1)
    alpha: float | None = None
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(1, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    resolution: int | None = Field(None, ge=32)
    seed: int = 0
    mixed_precision: str | None = None  # no | fp16 | bf16; default: no on CPU, family's dtype on GPU
    gradient_checkpointing: bool = False
    checkpoint_every: int | None = Field(None, ge=1)
    token: str = "ohwx"
    class_word: str = "person"
    held_out: int | None = Field(None, ge=0)
    probe_prompts: list[str] = Field(default_factory=lambda: list(PROBE_PROMPTS))
    probe_seeds: list[int] = Field(default_factory=lambda: [0, 1])
    probe_steps: int | None = None
    train_text_encoder: bool = False
    text_encoder_rank: int | None = Field(None, ge=1)
    prior_preservation: bool = False
    class_images: int | None = Field(None, ge=1)
    prior_loss_weight: float = Field(1.0, ge=0)
    ignore_gate: bool = False  # train on every readable photo even if the check refused it (studies)
    buckets: bool = False  # aspect buckets (Family.buckets): crops keep the photo's aspect, not square
    captions: str | None = None  # a captions.csv (file,caption); default: the set's sidecar .txt files

    def resolve(self, family: Family, n_train: int, device: str) -> TrainConfig:
        """Fill every ``None`` with the family default, so the saved config is complete."""
        steps = self.steps or (20 if family.tiny else min(1200, max(400, 80 * n_train)))
        precision = self.mixed_precision or (
            "no" if not device.startswith("cuda") else ("bf16" if family.gpu_dtype == "bfloat16" else "fp16"))
        return self.model_copy(update=dict(
            steps=steps, alpha=self.alpha or float(self.rank), resolution=self.resolution or family.resolution,
            mixed_precision=precision, checkpoint_every=self.checkpoint_every or max(1, steps // 4),
            probe_steps=self.probe_steps or family.steps, text_encoder_rank=self.text_encoder_rank or self.rank,
            class_images=self.class_images or (4 if family.tiny else max(50, 2 * n_train))))
