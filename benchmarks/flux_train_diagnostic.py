"""FLUX LoRA training steps in a fresh process, for narrowing down GPU failures (see RESULTS.md): the real-size
random FLUX crashed in backward at batch 4 and turned NaN at step 2 at batch 1 on an H100.

    python benchmarks/flux_train_diagnostic.py FAMILY BATCH SIDE AUTOCAST(0/1) LORA_FP32(0/1)
        [--steps N] [--attention auto|no-cudnn|math]

Each step is the trainer's: the adapter's loss under bf16 autocast, backward, clip 1.0, fused AdamW 1e-4.
Prints one line per step (loss, gradient norm, non-finite gradient and parameter counts, the first LoRA
module whose gradient is not finite) and a final OK/ERR line. Run it once per setting, each in a fresh
process: a CUDA fault poisons the process; with CUDA_LAUNCH_BLOCKING=1 the fault names its kernel.
"""

import argparse
import sys

sys.path.insert(0, ".")
from workbench.models.attention import CHOICES  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family")
    parser.add_argument("batch", type=int)
    parser.add_argument("side", type=int)
    parser.add_argument("autocast", choices=["0", "1"])
    parser.add_argument("lora_fp32", choices=["0", "1"])
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--attention", choices=CHOICES, default="auto")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run (random-flux-small, a small side)")
    return parser


def main() -> None:
    import torch
    from peft import LoraConfig

    from workbench.models import get_family
    from workbench.models.architectures import adapter_for
    from workbench.models.attention import attention_kernels
    from workbench.models.realsize import build_realsize_pipeline

    args = build_parser().parse_args()
    label = f"{args.family} b{args.batch} {args.side}px autocast={args.autocast} lora_fp32={args.lora_fp32} " \
            f"attention={args.attention}"
    family = get_family(args.family)
    if args.autocast == "1" and args.lora_fp32 == "1":  # the trainer's step, traced on the meta device
        from workbench.likeness.footprint import step_footprint

        traced = step_footprint(family, args.side, args.batch, "bf16").total_gb
        label += f" traced {traced:.1f} GB"
    device = torch.device(args.device)
    pipe = build_realsize_pipeline(family, args.device, torch.bfloat16)
    adapter = adapter_for("flux", pipe, family.text_length)
    encoders = sum(p.numel() * p.element_size() for m in adapter.text_encoders() for p in m.parameters()) / 1024**3
    label += f" (+ text encoders {encoders:.1f} GB, resident here; the trainer offloads them)"
    transformer = pipe.transformer
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian",
                                       target_modules=list(family.lora_targets)))
    transformer.train()
    named = [(n, p) for n, p in transformer.named_parameters() if p.requires_grad]
    for _, param in named:
        if args.lora_fp32 == "1":
            param.data = param.data.float()
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2, fused=True)
    cond = adapter.encode_captions(["photo of ohwx person"] * args.batch)
    latents = torch.randn(args.batch, 16, args.side // 8, args.side // 8, device=device, dtype=torch.bfloat16,
                          generator=torch.Generator(device).manual_seed(0))
    try:
        for step in range(1, args.steps + 1):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast == "1"), \
                    attention_kernels(args.attention):
                loss = adapter.loss(transformer, latents, cond, torch.Generator().manual_seed(step))
            loss.backward()
            bad_grads = [n for n, p in named if p.grad is not None and not torch.isfinite(p.grad).all()]
            norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            bad_params = sum(int((~torch.isfinite(p)).sum()) for p in params)
            print(f"step {step}: loss {float(loss.detach()):.5f} grad-norm {float(norm):.4g} "
                  f"non-finite grads in {len(bad_grads)}/{len(named)} tensors (first: {bad_grads[:1]}) "
                  f"non-finite params {bad_params}", flush=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
            label += f" peak {torch.cuda.max_memory_allocated() / 1024**3:.1f} GB"
        print("OK", label, flush=True)
    except Exception as exc:
        print("ERR", label, f"{type(exc).__name__}: {str(exc)[:400]}", flush=True)


if __name__ == "__main__":
    main()
