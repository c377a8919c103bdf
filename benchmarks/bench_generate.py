"""Generation speed: the workbench grid runner vs plain diffusers calls, measured in one process.

    .venv/bin/python benchmarks/bench_generate.py [--family tiny-sd] [--base DIR] [--images 16] [--steps 8]

Prints ms/image for each and the ratio (runner / plain). Both render the same prompts and seeds with
the same pipeline object; the runner's extra cost is PNG metadata, atomic writes and the table.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from workbench.config import Settings
from workbench.generate.runner import generate
from workbench.models import get_family, load_pipeline
from workbench.packs import get_pack


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", default="tiny-sd")
    parser.add_argument("--base", default=None)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    settings = Settings()
    family = get_family(args.family)
    device = settings.resolved_device()
    pack = get_pack("corporate-headshot")
    prompts = [p.prompt.format(subject="person") for p in pack.prompts]
    seeds = list(range(max(1, args.images // len(prompts))))
    n_images = len(prompts) * len(seeds)
    pipe, _ = load_pipeline(family, args.base, settings)
    size = family.resolution
    # warm-up
    pipe(prompt=prompts[:1], num_inference_steps=2, height=size, width=size)
    _sync(device)
    # 1. plain diffusers: the same prompts x seeds, batched the same way, images kept in memory
    jobs = [(p, s) for p in prompts for s in seeds]
    started = time.perf_counter()
    for i in range(0, len(jobs), args.batch):
        batch = jobs[i:i + args.batch]
        pipe(prompt=[p for p, _ in batch], negative_prompt=[pack.negative_prompt] * len(batch),
             num_inference_steps=args.steps, guidance_scale=family.guidance, height=size, width=size,
             generator=[torch.Generator("cpu").manual_seed(s) for _, s in batch])
    _sync(device)
    plain = (time.perf_counter() - started) / n_images
    # 2. the workbench runner, writing PNGs with metadata and the table
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        generate(None, [pack], out, family=args.family, base=args.base, steps=[args.steps], seeds=seeds,
                 batch_size=args.batch, settings=settings, progress=False)
        _sync(device)
        runner = (time.perf_counter() - started) / n_images
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    print(f"family {family.name} on {device}, {n_images} images, {args.steps} steps, batch {args.batch}")
    print(f"{'arm':10} {'ms/image':>10} {'ratio':>7} {'peak GiB':>9}")
    print(f"{'diffusers':10} {plain * 1000:10.1f} {1.0:7.2f} {peak:9.2f}")
    print(f"{'workbench':10} {runner * 1000:10.1f} {runner / plain:7.2f} {peak:9.2f}")
    print("(the workbench arm includes loading the pipeline once; plain diffusers reuses the loaded one)")


if __name__ == "__main__":
    main()
