"""Host cost of an SDXL LoRA training step, measured on a CPU.

On an H100 the SDXL LoRA step is bound by the host (262 ms of kernels in a 631 ms step, RESULTS.md
2026-11-27): what costs is the number of ops and autograd nodes, not their arithmetic. This builds SDXL's
UNet with its real block structure (7,530 modules, 560 attention LoRA layers, r4) at tiny widths, so the
arithmetic is small and what is left is the host's work, and times one bf16-autocast training step (forward,
backward) three ways, interleaved so drift hits all alike:

  peft     peft's own LoRA forward
  uncast   LoRA inputs left in bf16 (``lora_inputs_uncast``)
  lean     the trainer's step: ``lean_lora`` + ``lora_inputs_uncast``

A CPU dispatches a small op far faster than a GPU's host launches one, so this shows Python and autograd
overhead, and understates what fewer kernels save on a GPU. Prints a table; ``--json`` writes the rows.

    python benchmarks/train_host_proxy.py [--steps 40] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.likeness.lean_lora import lean_lora  # noqa: E402
from workbench.likeness.lora import lora_inputs_uncast, lora_layers_of  # noqa: E402
from workbench.models.architectures.sdxl import UNET_SDXL  # noqa: E402
from workbench.models.families import UNET_ATTENTION  # noqa: E402

MODES = ("peft", "uncast", "lean")


def narrow_sdxl_unet() -> torch.nn.Module:
    """SDXL's UNet config with every width cut to an eighth (head dims of 8, 8 groups per norm)."""
    from diffusers import UNet2DConditionModel

    config = dict(UNET_SDXL, sample_size=16, block_out_channels=(40, 80, 160), cross_attention_dim=32,
                  norm_num_groups=8, addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32)
    return UNet2DConditionModel(**config)


def build(batch: int):
    from peft import LoraConfig

    torch.manual_seed(0)
    unet = narrow_sdxl_unet().to(torch.bfloat16).requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=list(UNET_ATTENTION)))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:  # fp32 LoRA on a bf16 base, as the trainer keeps it
        p.data = p.data.float()
    inputs = dict(sample=torch.randn(batch, 4, 8, 8, dtype=torch.bfloat16), timestep=torch.randint(0, 1000, (batch,)),
                  encoder_hidden_states=torch.randn(batch, 7, 32, dtype=torch.bfloat16),
                  added_cond_kwargs={"text_embeds": torch.randn(batch, 32, dtype=torch.bfloat16),
                                     "time_ids": torch.randn(batch, 6)})
    return unet, params, inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per mode (after 2 warm-up steps)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet, params, inputs = build(args.batch)
    layers = lora_layers_of(unet)
    target = inputs["sample"].float()

    def step(mode: str) -> float:
        started = time.perf_counter()
        lean = lean_lora(layers) if mode == "lean" else contextlib.nullcontext()
        with lean, torch.autocast("cpu", dtype=torch.bfloat16), lora_inputs_uncast(layers if mode != "peft" else []):
            loss = torch.nn.functional.mse_loss(unet(**inputs).sample.float(), target)
        loss.backward()
        for p in params:
            p.grad = None
        return time.perf_counter() - started

    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for mode in MODES:
        step(mode), step(mode)
    for _ in range(args.steps):
        for mode in MODES:
            times[mode].append(step(mode))
    rows = [{"mode": mode, "median_ms": round(statistics.median(t) * 1e3, 1),
             "mean_ms": round(statistics.mean(t) * 1e3, 1), "min_ms": round(min(t) * 1e3, 1), "steps": len(t),
             "threads": args.threads, "batch": args.batch, "modules": sum(1 for _ in unet.modules()),
             "lora_layers": len(layers)} for mode, t in times.items()]
    peft = rows[0]["median_ms"]
    print(f"{'mode':8s} {'median ms':>10s} {'mean ms':>8s} {'min ms':>7s} {'vs peft':>8s}")
    for row in rows:
        print(f"{row['mode']:8s} {row['median_ms']:10.1f} {row['mean_ms']:8.1f} {row['min_ms']:7.1f} "
              f"{row['median_ms'] / peft:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
