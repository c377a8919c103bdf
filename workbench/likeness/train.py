"""DreamBooth-LoRA training of a likeness, read top to bottom:
config -> checked selfies -> accelerator + pipeline -> freeze base, add LoRA -> caches -> loop
(checkpoint + held-out probe every N steps) -> choose the best checkpoint -> save the Likeness.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import Settings
from ..errors import WorkbenchError
from ..faces import get_analyzer
from ..models import get_family, load_pipeline
from ..store import Manifest, atomic_write_json, read_manifest, write_manifest, write_table
from .adapters import adapter_for
from .card import CARD_FILE, LORA_FILE, Likeness
from .config import TrainConfig
from .prepare import choose_held_out, prepare_training_set
from .probe import probe_checkpoint, select_checkpoint

STATE_FILE = "trainer_state.pt"


def train_likeness(selfies: str | os.PathLike, out: str | os.PathLike, family: str = "tiny-sd",
                   settings: Settings | None = None, analyzer=None, progress: bool = True,
                   **options: Any) -> Likeness:
    """Train (or resume, or return the finished) likeness in ``out`` from the photos in ``selfies``."""
    from ..selfies import check_selfies

    settings = settings or Settings()
    out = Path(out)
    if (out / CARD_FILE).is_file() and (manifest := read_manifest(out)) and manifest.status == "done":
        return Likeness.load(out)
    # 1. config and the checked selfies
    config = TrainConfig(family=family, **options)
    fam = get_family(config.family)
    analyzer = analyzer or get_analyzer()
    report = check_selfies(selfies, analyzer=analyzer, out=out / "check", progress=progress)
    files = report.training_files
    if not files:
        raise WorkbenchError(f"{selfies}: none of the photos can be used for training ({report.verdict}); "
                             "see the check's advice.")
    subjects = {report.folder / p.file: p.subject for p in report.photos if p.subject is not None}
    held_out = choose_held_out(files, config.held_out, config.seed)
    device = settings.resolved_device()
    config = config.resolve(fam, len(files) - len(held_out), device)
    # 2. accelerator and pipeline
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision=config.mixed_precision,
                              gradient_accumulation_steps=config.gradient_accumulation, cpu=device == "cpu")
    pipe, source = load_pipeline(fam, config.base, settings, device=str(accelerator.device))
    adapter = adapter_for(fam.arch, pipe)
    manifest = read_manifest(out) or Manifest(kind="likeness")
    manifest.inputs = {"selfies": str(Path(selfies).resolve()), "training_files": [str(p) for p in files],
                       "held_out_files": [str(p) for p in held_out]}
    manifest.config, manifest.seeds, manifest.status = config.model_dump(), [config.seed], "running"
    manifest.outputs = {"model": source.as_dict()}
    write_manifest(out, manifest)
    # 3. freeze the base, add the LoRA
    from peft import LoraConfig

    for module in (pipe.vae, adapter.denoiser, *adapter.text_encoders()):
        module.requires_grad_(False)
    denoiser = adapter.denoiser
    torch.manual_seed(config.seed)  # the LoRA's gaussian init: same seed, same starting weights
    denoiser.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                                    target_modules=list(fam.lora_targets)))
    for param in denoiser.parameters():
        if param.requires_grad:
            param.data = param.data.float()  # LoRA weights train in fp32 under fp16/bf16 autocast
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    params = [p for p in denoiser.parameters() if p.requires_grad]
    # 4. caches: images and captions are encoded once; the encoders then leave the GPU
    data = prepare_training_set(files, {f: (s.bbox if s else None) for f, s in subjects.items()},
                                config.resolution, config.token, config.class_word, held_out)
    latents, cond = build_caches(adapter, data, accelerator.device)
    offload_encoders(adapter, "cpu")
    effective = config.batch_size * config.gradient_accumulation * accelerator.num_processes
    print(f"training {fam.name} LoRA r={config.rank}: {len(data.samples)} photos, {config.steps} steps, "
          f"effective batch {effective}, {sum(p.numel() for p in params):,} trainable parameters, "
          f"held out: {', '.join(p.name for p in held_out) or 'none'}")
    # 5. optimizer, schedule, resume
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, config.steps // 10)))
    model, optimizer = accelerator.prepare(denoiser, optimizer)
    start, curve, losses = resume(out, denoiser, optimizer, schedule)
    held_faces = [subjects[p] for p in held_out if p in subjects]
    train_faces = [subjects[s.file] for s in data.samples if s.file in subjects]
    # 6. the loop; randomness per step from (seed, step), so a resumed run draws what the original would
    started = time.perf_counter()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="training",
               disable=not progress, unit="step")
    for step in bar:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        index = torch.randint(0, latents.shape[0], (config.batch_size,), generator=generator)
        with accelerator.accumulate(model), accelerator.autocast():
            loss = adapter.loss(model, latents[index.to(latents.device)], batch_cond(cond, index), generator)
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if not np.isfinite(losses[-1]):
            raise WorkbenchError(f"loss became {losses[-1]} at step {step + 1}; lower --learning-rate or use "
                                 "--mixed-precision bf16/no.")
        per_step = (time.perf_counter() - started) / (step + 1 - start)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", s_per_step=f"{per_step:.2f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            row = probe_checkpoint(pipe, adapter, config, fam, data, analyzer, held_faces, train_faces, step + 1,
                                   out / "validation", losses)
            curve.append(row)
            save_checkpoint(out, pipe, adapter, optimizer, schedule, step + 1, curve, losses)
    # 7. choose the checkpoint and write the Likeness
    chosen, reason = select_checkpoint(curve)
    shutil.copyfile(out / "checkpoints" / f"step-{chosen:06d}" / LORA_FILE, out / LORA_FILE)
    write_table(__import__("pandas").DataFrame(curve), out / "curve.parquet")
    card = {"family": fam.name, "base": config.base, "model": source.as_dict(), "token": config.token,
            "class_word": config.class_word, "config": config.model_dump(), "chosen_step": chosen,
            "selection_reason": reason, "curve": curve, "recognizer": f"{analyzer.name} ({analyzer.version})",
            "held_out_files": [str(p) for p in held_out], "training_files": [str(s.file) for s in data.samples],
            "versions": manifest.versions, "licence_notes": fam.licence, "tiny": fam.tiny}
    atomic_write_json(out / CARD_FILE, card)
    manifest.status, manifest.timings["train_seconds"] = "done", time.perf_counter() - started
    manifest.outputs.update(chosen_step=chosen, lora=LORA_FILE)
    write_manifest(out, manifest)
    return Likeness.load(out)


def build_caches(adapter, data, device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VAE latents and text embeddings for every sample, in sample order (ids are in ``data``)."""
    pixels = torch.stack([torch.from_numpy(np.asarray(s.image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
                          for s in data.samples])
    latents = torch.cat([adapter.encode_images(pixels[i:i + 4]) for i in range(0, len(pixels), 4)])
    cond = adapter.encode_captions([s.caption for s in data.samples])
    return latents.to(device), {k: v.to(device) for k, v in cond.items()}


SHARED_COND = {"text_ids"}  # FLUX text position ids are per sequence, not per sample


def batch_cond(cond: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v if k in SHARED_COND else v[index.to(v.device)] for k, v in cond.items()}


def offload_encoders(adapter, device: str) -> None:
    for encoder in adapter.text_encoders():
        encoder.to(device)


def save_checkpoint(out: Path, pipe, adapter, optimizer, schedule, step: int, curve: list, losses: list) -> Path:
    """Adapter (safetensors, diffusers format) + resume state, appearing atomically as one folder."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    peft_state = get_peft_model_state_dict(adapter.denoiser)
    target = out / "checkpoints" / f"step-{step:06d}"
    staging = out / "checkpoints" / f".step-{step:06d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    type(pipe).save_lora_weights(staging, **{adapter.lora_owner_kwarg(): convert_state_dict_to_diffusers(peft_state)},
                                 weight_name=LORA_FILE, safe_serialization=True)
    torch.save({"step": step, "lora": {k: v.detach().cpu() for k, v in peft_state.items()},
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "curve": curve,
                "losses": losses}, staging / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def resume(out: Path, denoiser, optimizer, schedule) -> tuple[int, list, list]:
    """Load the newest complete checkpoint, if any: (next step, curve so far, losses so far)."""
    from peft import set_peft_model_state_dict

    done = sorted((out / "checkpoints").glob("step-*/" + STATE_FILE)) if (out / "checkpoints").is_dir() else []
    if not done:
        return 0, [], []
    state = torch.load(done[-1], map_location="cpu", weights_only=True)
    set_peft_model_state_dict(denoiser, state["lora"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    print(f"resuming from {done[-1].parent.name}")
    return state["step"], list(state["curve"]), list(state["losses"])
