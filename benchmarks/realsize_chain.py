"""The whole chain — train, generate, score — on real-size random-weight families, through the
workbench's own functions, one family after another in ONE process (so a precision switch between
families is exercised), with wall time and peak memory per stage.

GPU (benchmarks/gpu.sh): random-sd15, random-sdxl, random-flux at real resolution.
CPU (not in CI, minutes): ``python benchmarks/realsize_chain.py --device cpu --size 128``
(random-sd15 and random-flux-small by default).

Also checks, on SDXL, that training latents are finite where the fp16 VAE alone overflows, by
encoding the same crops with the VAE in the pipeline's dtype and in fp32.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SELFIES = ROOT / "datasets" / "sample-selfies" / "aws_rek_subject1"


def peak_gb(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    return None


def reset_peak(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sdxl_latent_check(family: str, settings, size: int) -> dict:
    """Encode the same crops with the VAE in half precision and in fp32: the trainer must use the latter."""
    import numpy as np
    import torch

    from workbench.images import load_image
    from workbench.models import load_pipeline

    pipe, _ = load_pipeline(family, settings=settings)
    photos = sorted(SELFIES.glob("*.jpg"))[:2]
    pixels = torch.stack([torch.from_numpy(np.asarray(load_image(p).convert("RGB").resize((size, size)),
                                                      dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for p in photos])
    out = {}
    with torch.no_grad():
        for name, dtype in (("half", pipe.vae.dtype), ("fp32", torch.float32)):
            pipe.vae.to(dtype)
            latents = pipe.vae.encode(pixels.to(pipe.vae.device, dtype)).latent_dist.mode()
            out[f"latents_finite_{name}"] = bool(torch.isfinite(latents).all())
            out[f"latents_absmax_{name}"] = float(latents.float().abs().nan_to_num(posinf=1e38).max())
    del pipe
    return out


def run_family(family: str, args, settings, analyzer_name: str, work: Path) -> dict:
    import numpy as np

    from workbench.faces import get_analyzer
    from workbench.generate import generate
    from workbench.likeness import train_likeness
    from workbench.metrics import score
    from workbench.models import get_family
    from workbench.packs import get_pack

    fam = get_family(family)
    size = args.size or fam.resolution
    row: dict = {"family": family, "size": size}
    analyzer = get_analyzer(analyzer_name)
    # 1. train: a few optimizer steps, one probe at the end, every default but the size
    reset_peak(args.device)
    if args.device.startswith("cuda"):  # what earlier families left behind (should be ~0)
        import torch

        row["gpu_allocated_before_gb"] = round(torch.cuda.memory_allocated() / 1024**3, 2)
    started = time.perf_counter()
    likeness = train_likeness(
        SELFIES, work / f"{family}-likeness", family=family, settings=settings, analyzer=analyzer, progress=False,
        steps=args.train_steps, checkpoint_every=args.train_steps, resolution=size, probe_steps=2, probe_seeds=[0],
        held_out=2, ignore_gate=True, batch_size=args.batch_size, attention=args.attention)
    config = likeness.card["config"]
    row.update(train_seconds=round(time.perf_counter() - started, 1), train_peak_gb=peak_gb(args.device),
               precision=config["precision"], memory_tier=config["memory"], batch_size=config["batch_size"],
               gradient_checkpointing=config["gradient_checkpointing"], attention=config["attention"],
               train_estimate_gb=(likeness.card.get("memory") or {}).get("estimate_gb"),  # the planner's, to check
               loss_finite=all(np.isfinite(r["loss"]) for r in likeness.card["curve"]),
               losses=[round(r["loss"], 4) for r in likeness.card["curve"]])
    # 2. generate: the corporate-headshot pack's first prompt, 2 seeds, few steps
    reset_peak(args.device)
    started = time.perf_counter()
    run = generate(likeness, [get_pack("corporate-headshot")], work / f"{family}-run", steps=[args.gen_steps],
                   seeds=[0, 1], size=size, prompts_per_pack=1, batch_size=2, settings=settings, progress=False)
    row.update(generate_seconds=round(time.perf_counter() - started, 1), generate_peak_gb=peak_gb(args.device),
               images=len(run.table))
    from PIL import Image

    pixels = [np.asarray(Image.open(run.path / p)) for p in run.table["path"]]
    row["images_finite_nonblank"] = all(p.std() > 0 for p in pixels)
    # 3. score (identity; CLIP metrics need CLIP weights, not here)
    started = time.perf_counter()
    scores = score(run.path, recognizers=[analyzer_name], clip_model=None, progress=False)
    row.update(score_seconds=round(time.perf_counter() - started, 1), score_rows=len(scores))
    if fam.arch == "sdxl":
        row.update(sdxl_latent_check(family, settings, size))
    return row


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--families", default=None, help="comma-separated (default by device)")
    parser.add_argument("--size", type=int, default=None, help="train/render side (default: the family's)")
    parser.add_argument("--flux-size", type=int, default=512, help="FLUX side on a GPU (time budget)")
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--gen-steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--attention", default=None, help="SDPA kernels for training: auto, no-cudnn or math "
                        "(default: the family's: no-cudnn for FLUX on a GPU)")
    parser.add_argument("--recognizer", default="auto", help="auto, dlib, or insightface:/pack/dir")
    parser.add_argument("--json", type=Path, default=None)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from workbench.config import Settings

    gpu = args.device.startswith("cuda")
    families = (args.families or ("random-sd15,random-sdxl,random-flux" if gpu else "random-sd15,random-flux-small"))
    work = Path(tempfile.mkdtemp(prefix="realsize-"))
    settings = Settings(home=work, device=args.device, offline=True)
    rows = []
    for family in families.split(","):
        size_arg = args.size
        if gpu and "flux" in family and args.size is None:
            args.size = args.flux_size
        try:
            row = run_family(family, args, settings, args.recognizer, work)
        except Exception as exc:  # one family's failure must not hide the others' results
            traceback.print_exc()
            row = {"family": family, "error": f"{type(exc).__name__}: {exc}"[:500]}
        args.size = size_arg
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        gc.collect()
    failed = [r["family"] for r in rows
              if "error" in r or not r.get("loss_finite") or not r.get("images_finite_nonblank")]
    print(f"realsize chain on {args.device}: {len(rows) - len(failed)}/{len(rows)} families ok"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
