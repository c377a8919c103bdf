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
from .card import CARD_FILE, KOHYA_FILE, LORA_FILE, Likeness
from .config import TrainConfig
from .export import KOHYA_ARCHS, export_kohya
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
    if config.ignore_gate:  # research: train on every readable photo, whatever the gate said
        files = [report.folder / p.file for p in report.photos if "unreadable" not in p.flags]
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
    encoders = add_text_encoder_lora(adapter, config, fam) if config.train_text_encoder else []
    params = [p for m in (denoiser, *encoders) for p in m.parameters() if p.requires_grad]
    # 4. caches: images (and, with frozen text encoders, captions) are encoded once; the encoders then
    # leave the GPU. Prior preservation adds class images the base model drew, cached the same way.
    captions = load_captions(report.folder, files, config.captions)
    boxes = {report.folder / p.file: p.subject_bbox for p in report.photos}  # in full-resolution pixels
    data = prepare_training_set(files, boxes,
                                config.resolution, config.token, config.class_word, held_out, captions,
                                buckets=fam.buckets(config.resolution) if config.buckets else None)
    cache = build_caches(adapter, data, accelerator.device, encode_text=not encoders)
    prior = None
    if config.prior_preservation:
        class_set = class_images(pipe, adapter, config, fam, out / "class-images", progress)
        prior = build_caches(adapter, class_set, accelerator.device, encode_text=not encoders)
    if not encoders:
        offload_encoders(adapter, "cpu")
    effective = config.batch_size * config.gradient_accumulation * accelerator.num_processes
    print(f"training {fam.name} LoRA r={config.rank}: {len(data.samples)} photos in {len(cache.buckets)} "
          f"bucket(s), {config.steps} steps, effective batch {effective}, "
          f"{sum(p.numel() for p in params):,} trainable parameters, "
          f"held out: {', '.join(p.name for p in held_out) or 'none'}")
    # 5. optimizer, schedule, resume
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, config.steps // 10)))
    model, optimizer = accelerator.prepare(denoiser, optimizer)
    start, curve, losses = resume(out, denoiser, optimizer, schedule, encoders)
    held_faces = [subjects[p] for p in held_out if p in subjects]
    train_faces = [subjects[s.file] for s in data.samples if s.file in subjects]
    # 6. the loop; randomness per step from (seed, step), so a resumed run draws what the original would
    started = time.perf_counter()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="training",
               disable=not progress, unit="step")
    for step in bar:
        # Under `accelerate launch`, each process draws its own batch (index 0 = the single-process draw).
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step + 7_919 * accelerator.process_index)
        with accelerator.accumulate(model), accelerator.autocast():
            loss = adapter.loss(model, *cache.draw(adapter, config.batch_size, generator), generator)
            if prior is not None:  # DreamBooth: the class prior keeps the base model's idea of a <class>
                loss = loss + config.prior_loss_weight * adapter.loss(
                    model, *prior.draw(adapter, config.batch_size, generator), generator)
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
            if accelerator.is_main_process:  # one process probes and writes; the others wait for it
                row = probe_checkpoint(pipe, adapter, config, fam, data, analyzer, held_faces, train_faces,
                                       step + 1, out / "validation", losses)
                curve.append(row)
                save_checkpoint(out, pipe, adapter, optimizer, schedule, step + 1, curve, losses, encoders, config)
            accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()  # the main process writes the Likeness
        return Likeness.load(out)
    # 7. choose the checkpoint and write the Likeness
    chosen, reason = select_checkpoint(curve)
    shutil.copyfile(out / "checkpoints" / f"step-{chosen:06d}" / LORA_FILE, out / LORA_FILE)
    kohya = export_kohya(out / LORA_FILE, out / KOHYA_FILE, fam, config) if fam.arch in KOHYA_ARCHS else None
    write_table(__import__("pandas").DataFrame(curve), out / "curve.parquet")
    card = {"family": fam.name, "base": config.base, "model": source.as_dict(), "token": config.token,
            "class_word": config.class_word, "config": config.model_dump(), "chosen_step": chosen,
            "selection_reason": reason, "curve": curve, "recognizer": f"{analyzer.name} ({analyzer.version})",
            "held_out_files": [str(p) for p in held_out], "training_files": [str(s.file) for s in data.samples],
            "captions": {s.file.name: s.caption for s in data.samples}, "kohya_export": kohya.name if kohya else None,
            "versions": manifest.versions, "licence_notes": fam.licence, "tiny": fam.tiny}
    atomic_write_json(out / CARD_FILE, card)
    manifest.status, manifest.timings["train_seconds"] = "done", time.perf_counter() - started
    manifest.outputs.update(chosen_step=chosen, lora=LORA_FILE, kohya=kohya.name if kohya else None)
    write_manifest(out, manifest)
    accelerator.wait_for_everyone()
    return Likeness.load(out)


class Cache:
    """Latents and conditioning per aspect bucket (one bucket when training square). A batch is
    drawn from one bucket, chosen in proportion to its size, so tensors in a batch share a shape."""

    def __init__(self, buckets: list[tuple[torch.Tensor, dict[str, Any]]]):
        self.buckets = buckets
        self.sizes = torch.tensor([float(latents.shape[0]) for latents, _ in buckets])

    def draw(self, adapter, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        bucket = 0 if len(self.buckets) == 1 else int(torch.multinomial(self.sizes, 1, generator=generator))
        latents, cond = self.buckets[bucket]
        index = torch.randint(0, latents.shape[0], (batch_size,), generator=generator)
        return latents[index.to(latents.device)], step_cond(adapter, cond, index)


def build_caches(adapter, data, device, encode_text: bool = True) -> Cache:
    """VAE latents and text embeddings for every sample, grouped by crop shape. When the text
    encoders train, captions stay text and are encoded each step (``step_cond``)."""
    groups: dict[tuple[int, int], list] = {}
    for sample in data.samples:
        groups.setdefault(sample.image.size, []).append(sample)
    buckets = []
    for samples in groups.values():
        pixels = torch.stack([torch.from_numpy(np.asarray(s.image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
                              for s in samples])
        latents = torch.cat([adapter.encode_images(pixels[i:i + 4]) for i in range(0, len(pixels), 4)])
        captions = [s.caption for s in samples]
        if encode_text:
            cond = {k: v.to(device) for k, v in adapter.encode_captions(captions).items()}
        else:
            cond = {"captions": captions}
        buckets.append((latents.to(device), cond))
    return Cache(buckets)


SHARED_COND = {"text_ids"}  # FLUX text position ids are per sequence, not per sample


def batch_cond(cond: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v if k in SHARED_COND else v[index.to(v.device)] for k, v in cond.items()}


def step_cond(adapter, cond: dict[str, Any], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch's conditioning: sliced from the cache, or encoded now through the LoRA'd encoders."""
    if "captions" in cond:
        return adapter.encode_captions_with_grad([cond["captions"][i] for i in index.tolist()])
    return batch_cond(cond, index)


def add_text_encoder_lora(adapter, config, fam) -> list[torch.nn.Module]:
    """LoRA on the CLIP text encoders' attention (SD/SDXL; diffusers' DreamBooth-LoRA targets)."""
    from peft import LoraConfig

    if adapter.arch == "flux":
        raise WorkbenchError("--train-text-encoder is for sd/sdxl families; FLUX likenesses train the transformer "
                             "only (as diffusers' and ai-toolkit's FLUX LoRA recipes do).")
    encoders = adapter.text_encoders()
    for encoder in encoders:
        encoder.add_adapter(LoraConfig(r=config.text_encoder_rank, lora_alpha=config.text_encoder_rank,
                                       init_lora_weights="gaussian",
                                       target_modules=list(fam.text_encoder_lora_targets)))
        for param in encoder.parameters():
            if param.requires_grad:
                param.data = param.data.float()
        encoder.train()
    return encoders


def load_captions(folder: Path, files: list[Path], captions_file: str | None) -> dict[str, str]:
    """Per-photo captions: a ``captions.csv`` (file,caption) when given, else kohya-style sidecar
    ``<photo>.txt`` files next to the photos. ``{subject}`` in a caption becomes ``<token> <class>``;
    a caption without it gets the subject prepended, so the trigger is always trained."""
    captions: dict[str, str] = {}
    if captions_file:
        import csv

        path = Path(captions_file)
        if not path.is_file():
            raise WorkbenchError(f"captions file {path} not found; give a CSV with columns file,caption.")
        with path.open(newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                if not row.get("file") or row.get("caption") is None:
                    raise WorkbenchError(f"{path}:{line}: needs columns 'file' and 'caption'.")
                captions[row["file"]] = row["caption"].strip()
    else:
        for photo in files:
            sidecar = photo.with_suffix(".txt")
            if sidecar.is_file():
                captions[photo.name] = sidecar.read_text().strip()
    return {name: text if "{subject}" in text else f"photo of {{subject}}, {text}" for name, text in captions.items()}


def class_images(pipe, adapter, config, fam, folder: Path, progress: bool):
    """Prior-preservation images: the base model's "photo of a <class>", drawn once and kept in
    ``folder`` (a resumed run reuses them), then treated like training samples."""
    from .prepare import Sample, TrainingSet

    folder.mkdir(parents=True, exist_ok=True)
    prompt = f"photo of a {config.class_word}"
    samples = []
    for i in tqdm(range(config.class_images), desc="class images", disable=not progress, unit="img"):
        path = folder / f"{i:04d}.png"
        if not path.is_file():
            with torch.no_grad():
                image = pipe(prompt=prompt, num_inference_steps=fam.steps, guidance_scale=fam.guidance,
                             height=config.resolution, width=config.resolution,
                             generator=torch.Generator("cpu").manual_seed(10_000 + i)).images[0]
            import io

            from ..store import atomic_write_bytes

            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            atomic_write_bytes(path, buffer.getvalue())
        from PIL import Image

        samples.append(Sample(id=f"class-{i}-{config.resolution}", file=path,
                              image=Image.open(path).convert("RGB"), caption=prompt))
    return TrainingSet(samples=samples, held_out=[], token="", class_word=config.class_word)


def offload_encoders(adapter, device: str) -> None:
    for encoder in adapter.text_encoders():
        encoder.to(device)


def save_checkpoint(out: Path, pipe, adapter, optimizer, schedule, step: int, curve: list, losses: list,
                    encoders: list | None = None, config=None) -> Path:
    """Adapter (safetensors, diffusers format, with its LoRA config as metadata so alpha survives) +
    resume state, appearing atomically as one folder."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    encoders = encoders or []
    peft_state = get_peft_model_state_dict(adapter.denoiser)
    encoder_states = [get_peft_model_state_dict(e) for e in encoders]
    layers = {adapter.lora_owner_kwarg(): convert_state_dict_to_diffusers(peft_state)}
    metadata = {adapter.lora_owner_kwarg().replace("_layers", "_adapter_metadata"):
                adapter.denoiser.peft_config["default"].to_dict()}
    for kwarg, encoder, state in zip(adapter.text_encoder_lora_kwargs(), encoders, encoder_states, strict=False):
        layers[kwarg] = convert_state_dict_to_diffusers(state)
        metadata[kwarg.replace("_layers", "_adapter_metadata")] = encoder.peft_config["default"].to_dict()
    target = out / "checkpoints" / f"step-{step:06d}"
    staging = out / "checkpoints" / f".step-{step:06d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    type(pipe).save_lora_weights(staging, **layers, **_jsonable(metadata), weight_name=LORA_FILE,
                                 safe_serialization=True)
    torch.save({"step": step, "lora": {k: v.detach().cpu() for k, v in peft_state.items()},
                "text_encoders": [{k: v.detach().cpu() for k, v in st.items()} for st in encoder_states],
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "curve": curve,
                "losses": losses}, staging / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _jsonable(metadata: dict[str, dict]) -> dict[str, dict]:
    """peft configs hold sets and enums; safetensors metadata must be JSON."""
    import json

    return {k: json.loads(json.dumps(v, default=lambda o: sorted(o) if isinstance(o, set) else str(o)))
            for k, v in metadata.items()}


def resume(out: Path, denoiser, optimizer, schedule, encoders: list | None = None) -> tuple[int, list, list]:
    """Load the newest complete checkpoint, if any: (next step, curve so far, losses so far)."""
    from peft import set_peft_model_state_dict

    done = sorted((out / "checkpoints").glob("step-*/" + STATE_FILE)) if (out / "checkpoints").is_dir() else []
    if not done:
        return 0, [], []
    state = torch.load(done[-1], map_location="cpu", weights_only=True)
    set_peft_model_state_dict(denoiser, state["lora"])
    for encoder, encoder_state in zip(encoders or [], state.get("text_encoders", []), strict=False):
        set_peft_model_state_dict(encoder, encoder_state)
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    print(f"resuming from {done[-1].parent.name}")
    return state["step"], list(state["curve"]), list(state["losses"])
