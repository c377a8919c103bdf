"""Real-size families with random weights: the published configs of SD1.5, SDXL and FLUX.1, built in
memory, so train / generate / score run at real size and real memory with nothing downloaded.

The configs are the ones in each model's ``*/config.json`` on the hub (stable-diffusion-v1-5,
stable-diffusion-xl-base-1.0, FLUX.1-dev); ``tests/test_models.py`` checks the parameter counts the
model cards give (SD1.5 UNet 859.5 M, SDXL UNet 2567.5 M, FLUX transformer 11.9 B, T5-XXL encoder 4.76 B).
Tokenizers are the local byte-level/unigram ones of the tiny families: their ids fit the real vocabularies.

They are built, not saved and loaded: 7-33 GB of random weights cost more to write and read back than to
initialise on the GPU. ``random-flux-small`` keeps FLUX's real width with one double and one single block
and a one-layer T5-XXL, so the FLUX path runs on a CPU.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .families import Family

CLIP_VOCAB, T5_VOCAB = 49408, 32128
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768, vocab_size=CLIP_VOCAB,
              bos_token_id=0, eos_token_id=1, pad_token_id=1)
CLIP_BIGG = dict(CLIP_L, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 hidden_act="gelu", projection_dim=1280)
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
              relative_attention_max_distance=128, feed_forward_proj="gated-gelu", vocab_size=T5_VOCAB,
              is_encoder_decoder=False, use_cache=False, dense_act_fn="gelu_new", is_gated_act=True)
VAE_SD = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
              layers_per_block=2, sample_size=512, scaling_factor=0.18215)
VAE_SDXL = dict(VAE_SD, sample_size=1024, scaling_factor=0.13025, force_upcast=True)
VAE_FLUX = dict(VAE_SD, latent_channels=16, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False, force_upcast=True)
UNET_SD15 = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
UNET_SDXL = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280), cross_attention_dim=2048, attention_head_dim=(5, 10, 20),
                 transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))
SCHEDULER_SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1, timestep_spacing="leading")
SCHEDULER_FLUX = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15, shift=3.0,
                      use_dynamic_shifting=True)
# Reduced depth (real width) for CPU runs of the FLUX path.
SMALL = {"transformer": dict(num_layers=1, num_single_layers=1), "t5": dict(num_layers=1)}


@contextlib.contextmanager
def _building_on(device: str, dtype):
    """Create parameters directly on ``device`` in ``dtype``: initialising 12 B parameters in fp32 on
    the CPU and then copying them would take minutes and twice the memory."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def component_configs(family: Family) -> dict[str, dict[str, Any]]:
    """The configs a family's pipeline is built from (``random-flux-small`` reduced as ``SMALL`` says)."""
    if family.arch == "sd":
        return {"unet": UNET_SD15, "vae": VAE_SD, "text_encoder": CLIP_L, "scheduler": SCHEDULER_SD}
    if family.arch == "sdxl":
        return {"unet": UNET_SDXL, "vae": VAE_SDXL, "text_encoder": CLIP_L, "text_encoder_2": CLIP_BIGG,
                "scheduler": SCHEDULER_SD}
    small = family.name.endswith("-small")
    return {"transformer": dict(FLUX_DEV, **(SMALL["transformer"] if small else {})), "vae": VAE_FLUX,
            "text_encoder": CLIP_L, "text_encoder_2": dict(T5_XXL, **(SMALL["t5"] if small else {})),
            "scheduler": SCHEDULER_FLUX}


def build_realsize_pipeline(family: Family, device: str = "cpu", dtype=None, seed: int = 20261126) -> Any:
    """A pipeline of ``family``'s real configs with seeded random weights, built on ``device``."""
    import torch

    from .assemble import assemble_pipeline

    torch.manual_seed(seed)
    if str(device).startswith("cuda"):
        torch.cuda.manual_seed_all(seed)
    return assemble_pipeline(family.arch, component_configs(family), _building_on(device, dtype or torch.float32))


def parameter_counts(family: Family) -> dict[str, int]:
    """Parameters per component, counted on the meta device (no memory, no time): the test of the configs."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    configs = component_configs(family)
    builders = {"unet": lambda c: UNet2DConditionModel(**c), "transformer": lambda c: FluxTransformer2DModel(**c),
                "vae": lambda c: AutoencoderKL(**c), "text_encoder": lambda c: CLIPTextModel(CLIPTextConfig(**c)),
                "text_encoder_2": (lambda c: T5EncoderModel(T5Config(**c))) if family.arch == "flux"
                else (lambda c: CLIPTextModelWithProjection(CLIPTextConfig(**c)))}
    counts = {}
    with torch.device("meta"):
        for name, config in configs.items():
            if name in builders:
                counts[name] = sum(p.numel() for p in builders[name](config).parameters())
    return counts
