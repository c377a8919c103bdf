"""Model families as data: what a pipeline needs, where its weights come from, what licence binds it.

A family's ``arch`` names its architecture (``architectures/``: the pipeline, the trainer's adapter, what
differs between SD, SDXL and FLUX); everything else is data.
The tiny families use the very same classes with small random-weight configs (see ``tiny.py``) so
every code path runs on a CPU in seconds. Their images are noise, and every output says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import unknown_name
from .attention import Attention

# Attention projections, as in diffusers' train_dreambooth_lora{,_sdxl,_flux}.py examples.
UNET_ATTENTION = ("to_k", "to_q", "to_v", "to_out.0")
# FLUX: diffusers' train_dreambooth_lora_flux.py trains both streams' attention and feed-forwards; kohya's
# lora_flux.py also trains the single blocks' linear1/linear2 (diffusers' proj_mlp/proj_out; the suffix
# "proj_out" also takes the final projection, 3072 -> 64).
FLUX_TARGETS = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out",
                "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out")
CLIP_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class Family:
    name: str
    arch: str  # a name in the architectures' registry (models/architectures/): what differs between them
    resolution: int
    sampler: str  # default sampler (a name in workbench.generate.samplers)
    steps: int  # default inference steps
    guidance: float
    licence: str
    hub_id: str | None = None  # default weights; None for tiny families (built locally)
    tiny: bool = False  # small config, built once and cached (seconds on a CPU)
    realsize: bool = False  # the real configs with random weights, built in memory (models/realsize.py)
    gpu_dtype: str = "float16"
    lora_targets: tuple[str, ...] = UNET_ATTENTION
    text_encoder_lora_targets: tuple[str, ...] = CLIP_ATTENTION
    notes: str = ""
    bucket_step: int = 64  # aspect-bucket sides are multiples of this (VAE 8 x FLUX 2x2 packing x margin)
    # T5 tokens for FLUX, the same in training and rendering (FLUX.1-dev's pipeline default is 512).
    text_length: int = 512
    # SDPA kernels a training step uses on a GPU (models/attention.py). FLUX: "no-cudnn": on an H100 (torch
    # 2.11, cuDNN 9.19) PyTorch's choice, cuDNN, hit an illegal memory access at batch 1 and failed its graph
    # at batch 2 in the real-size transformer's step, where flash/memory-efficient trained finite (RESULTS.md).
    train_attention: Attention = "auto"

    @property
    def random_weights(self) -> bool:
        """Images are noise: reports and the app say so."""
        return self.tiny or self.realsize

    @property
    def built_locally(self) -> bool:
        """No weights to download: the family is built from its config here."""
        return self.tiny or self.realsize

    def buckets(self, resolution: int | None = None) -> list[tuple[int, int]]:
        """(width, height) training buckets of about resolution^2 pixels: 1:1, 3:4, 4:3, 2:3, 3:2
        (kohya / SDXL-style aspect bucketing, reduced to the aspects phone selfies have)."""
        side, step = resolution or self.resolution, self.bucket_step
        shapes = []
        for aspect in (1.0, 3 / 4, 4 / 3, 2 / 3, 3 / 2):
            width = max(step, round(side * aspect**0.5 / step) * step)
            height = max(step, round(side / aspect**0.5 / step) * step)
            if (width, height) not in shapes:
                shapes.append((width, height))
        return shapes

    @property
    def pipeline_class(self) -> str:
        from .architectures import get_architecture

        return get_architecture(self.arch).pipeline_class


TINY_NOTE = "random weights built from a small config: images are noise, for testing the machinery only"
REALSIZE_NOTE = ("the real configs with random weights, built in memory: real size, real memory and speed, no "
                 "download; images are noise")
RANDOM_LICENCE = "Apache-2.0 (random weights)"
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("sd15", "sd", 512, "dpmpp_2m", 30, 7.0, "CreativeML OpenRAIL-M",
               hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5"),
        Family("sdxl", "sdxl", 1024, "euler", 30, 6.0, "CreativeML OpenRAIL++-M",
               hub_id="stabilityai/stable-diffusion-xl-base-1.0"),
        Family("flux", "flux", 1024, "flow_euler", 28, 3.5,
               "FLUX.1 [dev] Non-Commercial License (outputs may be used commercially; the weights not)",
               hub_id="black-forest-labs/FLUX.1-dev", gpu_dtype="bfloat16", lora_targets=FLUX_TARGETS,
               train_attention="no-cudnn"),
        Family("tiny-sd", "sd", 64, "euler", 4, 5.0, "Apache-2.0 (random weights)", tiny=True,
               notes=TINY_NOTE, bucket_step=16),
        Family("tiny-sdxl", "sdxl", 64, "euler", 4, 5.0, "Apache-2.0 (random weights)", tiny=True,
               notes=TINY_NOTE, bucket_step=16),
        Family("tiny-flux", "flux", 64, "flow_euler", 4, 3.5, "Apache-2.0 (random weights)", tiny=True,
               lora_targets=FLUX_TARGETS, train_attention="no-cudnn", notes=TINY_NOTE, bucket_step=16),
        Family("random-sd15", "sd", 512, "dpmpp_2m", 30, 7.0, RANDOM_LICENCE, realsize=True, notes=REALSIZE_NOTE),
        Family("random-sdxl", "sdxl", 1024, "euler", 30, 6.0, RANDOM_LICENCE, realsize=True, notes=REALSIZE_NOTE),
        Family("random-flux", "flux", 1024, "flow_euler", 28, 3.5, RANDOM_LICENCE, realsize=True,
               gpu_dtype="bfloat16", lora_targets=FLUX_TARGETS, train_attention="no-cudnn", notes=REALSIZE_NOTE),
        Family("random-flux-small", "flux", 256, "flow_euler", 4, 3.5, RANDOM_LICENCE, realsize=True,
               gpu_dtype="bfloat16", lora_targets=FLUX_TARGETS, train_attention="no-cudnn",
               notes=REALSIZE_NOTE + "; one double + one single block, one T5 layer",
               bucket_step=16),
    ]
}


def get_family(name: str) -> Family:
    """A model family by name (a misspelt name gets a did-you-mean)."""
    if name in FAMILIES:
        return FAMILIES[name]
    raise unknown_name("model family", name, FAMILIES)
