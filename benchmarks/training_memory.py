"""Training memory of the real-size families, traced on the meta device (``likeness/footprint.py``): the
numbers behind the memory tiers (``likeness/memory.py``), the trace against the peaks the H100 measured,
and the tier and batch the planner gives 24, 48 and 80 GB cards. CPU only, about two minutes, no weights.

    python benchmarks/training_memory.py [--json results/cpu-2core-2026-11-27/training-memory.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from workbench.likeness.footprint import step_footprint
from workbench.likeness.memory import GB, plan_memory
from workbench.models import get_family
from workbench.models.architectures import get_architecture
from workbench.models.realsize import parameter_counts

FAMILIES = {"sd": "sd15", "sdxl": "sdxl", "flux": "flux"}
PROFILES = {arch: get_architecture(arch).memory for arch in FAMILIES}
NATIVE = {arch: profile.native for arch, profile in PROFILES.items()}
PRECISION = {"sd": "fp16", "sdxl": "fp16", "flux": "bf16"}  # the families' GPU dtypes
# torch.cuda.max_memory_allocated of train_likeness() on one H100 80GB (results/h100-2026-11-26), for the step
# as it was then: its LoRA layers cast their input up to fp32. Traced that way, the step came within -1.4 %
# (SD1.5) and -0.5 % (SDXL) of these peaks; the step now keeps those inputs in half precision, which the trace
# puts 4-6 % lower. A new GPU measurement replaces these rows.
MEASURED = [("sd15", 512, 4, "fp16", 6.24, "chain.json: random-sd15, tier full"),
            ("sdxl", 1024, 4, "fp16", 34.41, "speed.json: train_likeness(), tier full")]
CARDS_GB = (24, 48, 80)
FREE = 0.95  # of a card's memory free to a training (CUDA context, display)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write every row here")
    return parser


def fit(arch: str) -> dict:
    """Per-sample activations at half and full native resolution, eager and checkpointed, at batch 1, and
    the line fixed + per_pixel * (resolution / native)^2 through them."""
    family, native = get_family(FAMILIES[arch]), NATIVE[arch]
    row = {"arch": arch}
    for label, checkpointed in (("eager", False), ("checkpointed", True)):
        half = step_footprint(family, native // 2, 1, PRECISION[arch], checkpointed).activations_gb
        full = step_footprint(family, native, 1, PRECISION[arch], checkpointed)
        per_pixel = (full.activations_gb - half) / 0.75
        row[label] = {"half_gb": round(half, 3), "native_gb": round(full.activations_gb, 3),
                      "fixed": round(full.activations_gb - per_pixel, 2), "per_pixel": round(per_pixel, 2),
                      "table": PROFILES[arch].activations[checkpointed]}
        row["lora_parameters_per_rank"] = full.lora_parameters // 16
    if arch != "flux":  # --train-text-encoder: what the CLIP encoders and their LoRA add, per sample
        for label, checkpointed in (("eager", False), ("checkpointed", True)):
            plain = step_footprint(family, native, 1, PRECISION[arch], checkpointed)
            encoders = step_footprint(family, native, 1, PRECISION[arch], checkpointed, train_text_encoder=True)
            row[f"text_encoders_{label}_gb"] = round(encoders.activations_gb - plain.activations_gb, 3)
            row["text_encoder_lora_per_rank"] = (encoders.lora_parameters - plain.lora_parameters) // 16
        row["table_text_encoders"] = (PROFILES[arch].text_encoder_activations,
                                      PROFILES[arch].text_encoder_lora_per_rank)
    counts = parameter_counts(family)
    row["resident_parameters"] = counts[get_architecture(arch).denoiser] + counts["vae"]
    row["table_lora_per_rank"] = PROFILES[arch].lora_params_per_rank
    row["table_resident"] = PROFILES[arch].resident_params
    return row


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    rows = {"fits": [], "measured": [], "cards": []}
    print("activations per sample (GB) traced at batch 1 | fit fixed + per_pixel * (res/native)^2 | memory.py")
    for arch in FAMILIES:
        row = fit(arch)
        rows["fits"].append(row)
        for label in ("eager", "checkpointed"):
            r = row[label]
            print(f"  {FAMILIES[arch]:5} {label:12} {r['half_gb']:7.2f} @{NATIVE[arch] // 2} {r['native_gb']:7.2f} "
                  f"@{NATIVE[arch]} | {r['fixed']:5.2f} + {r['per_pixel']:5.2f} p | table {r['table']}")
        if arch != "flux":
            print(f"  {FAMILIES[arch]:5} text encoders trained: + {row['text_encoders_eager_gb']:.2f} / "
                  f"{row['text_encoders_checkpointed_gb']:.2f} GB per sample, LoRA per rank "
                  f"{row['text_encoder_lora_per_rank']:,} | table {row['table_text_encoders']}")
        print(f"  {FAMILIES[arch]:5} resident parameters {row['resident_parameters']:,} (table "
              f"{row['table_resident']:,.0f}), LoRA per rank {row['lora_parameters_per_rank']:,} "
              f"(table {row['table_lora_per_rank']:,})")
    print("\ntrace vs the H100's measured peak (torch.cuda.max_memory_allocated) of the step before its LoRA "
          "inputs stayed in half precision (that step's trace: -1.4 % and -0.5 %)")
    for name, size, batch, precision, measured, source in MEASURED:
        traced = step_footprint(get_family(name), size, batch, precision).total_gb
        rows["measured"].append(dict(family=name, size=size, batch=batch, precision=precision,
                                     traced_gb=round(traced, 2), measured_gb=measured, source=source))
        print(f"  {name:5} {size} b{batch} {precision}: traced {traced:.2f} GB, measured {measured:.2f} GB "
              f"({traced / measured - 1:+.1%})  [{source}]")
    print(f"\nwhat auto picks at native resolution with {FREE:.0%} of the card free, and the trace of that choice")
    for arch, name in FAMILIES.items():
        family = get_family(name)
        for card in CARDS_GB:
            plan = plan_memory(family, NATIVE[arch], PRECISION[arch], "cuda", int(card * FREE * GB))
            traced = step_footprint(family, NATIVE[arch], plan.batch_size, PRECISION[arch], plan.gradient_checkpointing,
                                    optimizer=plan.optimizer, quantize_base=plan.quantize_base).total_gb
            rows["cards"].append(dict(family=name, card_gb=card, tier=plan.tier, batch=plan.batch_size,
                                      estimate_gb=plan.estimate_gb, traced_gb=round(traced, 2)))
            print(f"  {name:5} {card:3} GB card: {plan.tier:8} b{plan.batch_size}  "
                  f"estimate {plan.estimate_gb:5.1f} GB, trace {traced:5.1f} GB")
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
