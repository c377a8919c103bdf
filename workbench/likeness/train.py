"""DreamBooth-LoRA training of a likeness, read top to bottom:
setup (config -> checked selfies -> accelerator + pipeline -> freeze base, add LoRA -> caches -> optimizer,
resume) -> loop (checkpoint + held-out probe every N steps) -> finish (choose the checkpoint, save the Likeness).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import retention, tracking
from ..config import Settings
from ..errors import ArtifactError, ConfigError, WorkbenchError
from ..faces import get_analyzer
from ..lineage import describe_changes, describe_photo_change, link, photo_hashes, refuse_other_inputs
from ..models import get_family, load_pipeline
from ..models.architectures import adapter_for, get_architecture
from ..models.architectures.base import upload
from ..models.attention import attention_kernels
from ..models.loading import ensure_available
from ..models.regional import check_compile, compile_denoiser
from ..store import (
    Manifest,
    atomic_write,
    atomic_write_json,
    file_sha256,
    read_manifest,
    stage,
    write_manifest,
    write_table,
)
from .card import CARD_FILE, KOHYA_FILE, LORA_FILE, Likeness
from .config import TrainConfig
from .export import canonical_safetensors, export_kohya, kohya_base_version
from .lean_lora import lean_lora
from .memory import config_peak_gb, out_of_memory_advice
from .prepare import prepare_training_set
from .probe import encode_probes, probe_checkpoint, select_checkpoint
from .splits import Splits, make_splits

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.json"
# Settings that change only memory or speed, not what a step trains: a run may resume with others (after
# running out of memory, say). Every other setting must match the checkpoints it resumes.
RESUMABLE_CHANGES = frozenset({"memory", "gradient_checkpointing", "vae", "compile", "attention", "log_with"})


@dataclass
class Run:
    """Everything a training run holds between setup, the loop and the finish."""

    out: Path
    config: TrainConfig
    fam: Any
    accelerator: Any
    pipe: Any
    source: Any
    adapter: Any
    analyzer: Any
    manifest: Manifest
    data: Any
    cache: Cache
    prior: Cache | None
    model: Any
    optimizer: Any
    schedule: Any
    params: list
    encoders: list
    splits: Splits
    held_faces: list  # validation photos' faces: they choose the checkpoint
    train_faces: list
    start: int = 0
    curve: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    probe_embeds: dict | None = None  # the probe prompts' text embeddings (frozen text encoders only)
    where: str = "before the first step"  # what the run is doing, for an out-of-memory error


def train_likeness(selfies: str | os.PathLike, out: str | os.PathLike, family: str = "tiny-sd",
                   settings: Settings | None = None, analyzer=None, progress: bool = True,
                   report=None, callback=None, replace: bool = False, **options: Any) -> Likeness:
    """Train (or resume, or return the finished) likeness in ``out`` from the photos in ``selfies``.
    ``report``: a finished ``CheckReport`` of ``selfies``, so a set is checked once. ``callback(done,
    total, unit=, loss=)`` is called after every optimizer step; when it raises (a job's cancel, Ctrl-C)
    the current step is saved as a checkpoint first, so the run resumes from exactly there.

    ``out`` is reused only for the same photos (by content) and settings; a likeness of other photos or
    settings there is refused, or with ``replace`` deleted first (with what was made from it)."""
    settings = settings or Settings()
    out = Path(out)
    config = TrainConfig.parse(family, **options)  # a bad option (bounds included) fails here, before anything
    manifest, differences = reuse_check(out, selfies, config)
    if differences:
        if not replace:
            refuse_other_inputs(out, "likeness", differences)
        receipt = retention.replace(out, settings.home, "likeness")
        print(f"replaced {out}: {len(receipt.removed_files)} files removed" + "".join(
            f"\n  {line}" for line in receipt.lines() if not line.startswith("removed ")))
        manifest = None
    if manifest is not None and manifest.status == "done" and (out / CARD_FILE).is_file():
        return Likeness.load(out)
    if config.compile:
        check_compile(settings.resolved_device())
    manifest = manifest or Manifest(kind="likeness")
    started = time.perf_counter()
    with stage(out, manifest):
        if (done := read_manifest(out)) is not None and done.status == "done" and (out / CARD_FILE).is_file():
            return Likeness.load(out)  # another process finished it while this one waited for nothing
        run = None
        try:
            run = setup(selfies, out, config, settings, analyzer, progress, report, manifest)
            with lean_lora(lora_layers_of(run.adapter.denoiser, *run.encoders)):
                train_loop(run, progress, callback)
        except torch.OutOfMemoryError as exc:  # an error to act on: which settings fit, and what resumes
            resolved = run.config if run else TrainConfig(**manifest.config) if manifest.config else None
            if resolved is None or resolved.batch_size is None:  # before the memory plan: nothing to advise
                raise
            where = run.where if run else "while loading the model or caching the photos"
            raise WorkbenchError(out_of_memory_advice(get_family(resolved.family), resolved, where,
                                                      last_checkpoint(out))) from exc
        if not run.accelerator.is_main_process:
            run.accelerator.wait_for_everyone()  # the main process writes the Likeness
            return Likeness.load(out)
        # selfies on disk to the chosen LoRA, the model load excluded (the time a person waits for a likeness)
        timings = manifest.timings
        timings["likeness_seconds"] = time.perf_counter() - started - timings.get("load_seconds", 0.0)
        return finish(run, selfies)


def reuse_check(out: str | os.PathLike, selfies: str | os.PathLike,
                config: TrainConfig) -> tuple[Manifest | None, list[str]]:
    """The folder's manifest and what differs between the likeness it holds and the one asked for (empty:
    the folder may be resumed or returned). The app asks this before it queues a training."""
    if not Path(selfies).is_dir():
        raise WorkbenchError(f"{selfies}: not a folder of photos. Pass the folder that holds your selfies.")
    manifest = read_manifest(out)
    if manifest is not None and manifest.kind != "likeness":
        raise ConfigError(f"{out} holds a {manifest.kind}, not a likeness; train into another --out.")
    if manifest is None:
        return None, []
    return manifest, likeness_differences(manifest, photo_hashes(selfies), config)


def training_conflicts(out: str | os.PathLike, selfies: str | os.PathLike, family: str = "tiny-sd",
                       **options: Any) -> list[str]:
    """What ``train_likeness(selfies, out, family, **options)`` would refuse, checked without training: a bad
    or out-of-bounds option raises ``ConfigError``; the list says what differs from the likeness already in
    ``out`` (empty: ``out`` is new, or holds this likeness to resume or return)."""
    return reuse_check(out, selfies, TrainConfig.parse(family, **options))[1]


def likeness_differences(manifest: Manifest, photos: dict[str, str], config: TrainConfig) -> list[str]:
    """What differs between the likeness (finished or not) a folder's manifest records and the one asked
    for: its photos by content, and every setting given explicitly (memory settings may change)."""
    differences = []
    recorded = manifest.inputs.get("set_sha256")
    if recorded is None and manifest.inputs.get("photo_sha256"):  # written before set hashes: its training photos
        trained = set(manifest.inputs["photo_sha256"].values())
        if not trained <= set(photos.values()):
            differences.append(f"other photos ({len(trained - set(photos.values()))} of its training photos are "
                               "not among these)")
    elif recorded is not None and (change := describe_photo_change(photos, recorded)):
        differences.append(change)
    if manifest.config:
        asked = {k: v for k, v in config.model_dump().items()
                 if k in config.model_fields_set and v is not None and k not in RESUMABLE_CHANGES}
        differences += describe_changes(asked, manifest.config)
    return differences


def setup(selfies, out: Path, config: TrainConfig, settings: Settings, analyzer, progress: bool, report,
          manifest: Manifest) -> Run:
    """1. config and checked selfies  2. accelerator and pipeline  3. LoRA  4. caches  5. optimizer, resume."""
    from ..selfies import check_selfies

    fam = get_family(config.family)
    ensure_available(fam, config.base, settings)  # missing weights fail now, not after the selfie check
    analyzer = analyzer or get_analyzer()
    phase = time.perf_counter()
    if report is None:
        report = check_selfies(selfies, analyzer=analyzer, out=out / "check", progress=progress)
    manifest.timings["check_seconds"] = time.perf_counter() - phase
    files = training_files(selfies, report, config)
    subjects = {report.folder / p.file: p.subject for p in report.photos if p.subject is not None}
    boxes = {report.folder / p.file: p.subject_bbox for p in report.photos}  # in full-resolution pixels
    splits = make_splits(files, boxes, config.validation, config.test, config.seed, config.splits)
    device = settings.resolved_device()
    if config.batch_size is None and (saved := saved_config(out)):  # resuming: the batch its steps were trained at
        config = config.model_copy(update={"batch_size": saved["batch_size"]})
    config = config.resolve(fam, len(splits.train), device)
    photos = {str(p.resolve()): file_sha256(p) for p in files}
    check_resumable(out, config, photos, manifest.inputs.get("photo_sha256"))  # before this run writes anything
    manifest.config = config.model_dump()
    tracking.check_trackers(config.log_with)
    accelerator = new_accelerator(config, cpu=device == "cpu", project_dir=out / "tracking")
    if config.log_with:  # loss, learning rate, the checkpoint curve and probe images to the user's tracker
        tracking.default_mlflow_uri(settings.home)
        accelerator.init_trackers(f"likeness-{out.name}", config=tracking.hparams(config.model_dump()),
                                  init_kwargs={"mlflow": {"run_name": out.name}, "wandb": {"name": out.name}})
    phase = time.perf_counter()
    pipe, source = load_pipeline(fam, config.base, settings, device=str(accelerator.device),
                                 dtype=WEIGHT_DTYPES[config.precision],
                                 quantize=None if config.quantize_base == "none" else config.quantize_base)
    adapter = adapter_for(fam.arch, pipe, fam.text_length)
    if config.vae in ("sliced", "tiled"):  # the memory tier's VAE: one image at a time (and tiles)
        pipe.vae.enable_slicing()
    if config.vae == "tiled":
        pipe.vae.enable_tiling()
    manifest.timings["load_seconds"] = time.perf_counter() - phase
    manifest.error = None
    manifest.inputs = {"selfies": str(Path(selfies).resolve()), **splits.as_card()["splits"],
                       "photo_sha256": photos, "set_sha256": photo_hashes(selfies),
                       "base": {"family": fam.name, "base": config.base}}
    manifest.links = {"selfies": link(selfies, out)}
    manifest.config, manifest.seeds, manifest.status = config.model_dump(), [config.seed], "running"
    manifest.outputs = {"model": source.as_dict(), "memory": memory_report(fam, config, str(accelerator.device))}
    write_manifest(out, manifest)
    # 3. freeze the base, add the LoRA (fp32 weights under fp16/bf16 autocast)
    denoiser, encoders, params = add_lora(pipe, adapter, config, fam)
    if config.compile:  # after the LoRA and checkpointing are in place: the compiled blocks include them
        compile_denoiser(denoiser)
    # 4. caches: images (and, with frozen text encoders, captions) are encoded once; the encoders then
    # leave the GPU. Prior preservation adds class images the base model drew, cached the same way.
    phase = time.perf_counter()
    captions = load_captions(report.folder, splits.train, config.captions)
    data = prepare_training_set(splits.train, boxes, config.resolution, config.token, config.class_word,
                                [*splits.validation, *splits.test], captions,
                                buckets=fam.buckets(config.resolution) if config.buckets else None)
    cache = build_caches(adapter, data, accelerator.device, encode_text=not encoders)
    prior = None
    if config.prior_preservation:
        class_set = class_images(pipe, adapter, config, fam, out / "class-images", progress)
        prior = build_caches(adapter, class_set, accelerator.device, encode_text=not encoders)
    probe_embeds = None  # frozen encoders: the probes' embeddings now, so the encoders can leave for good
    if not encoders:
        probe_embeds = encode_probes(pipe, config, fam, f"{data.token} {data.class_word}", accelerator.device)
        offload_encoders(adapter, "cpu")
    manifest.timings["cache_seconds"] = time.perf_counter() - phase  # latents, captions, class images, probes
    effective = config.batch_size * config.gradient_accumulation * accelerator.num_processes
    print(f"training {fam.name} LoRA r={config.rank}: {len(data.samples)} photos in {len(cache.buckets)} "
          f"bucket(s), {config.steps} optimizer steps x effective batch {effective} = "
          f"{config.steps * effective} samples, {config.precision}, memory tier {config.memory}"
          f"{', compiled blocks' if config.compile else ''}"
          f"{'' if config.attention == 'auto' else ', attention ' + config.attention}, "
          f"{sum(p.numel() for p in params):,} trainable parameters, "
          f"validation: {', '.join(p.name for p in splits.validation) or 'none'}, test: "
          f"{', '.join(p.name for p in splits.test) or 'none'} ({len(set(splits.shoots.values()))} shoot(s))")
    # 5. optimizer, schedule (prepared, so it steps once per optimizer update), resume
    optimizer = make_optimizer(params, config, accelerator.device)
    warmup = max(1, config.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model, optimizer, schedule = accelerator.prepare(denoiser, optimizer, schedule)
    start, curve, losses = resume(out, denoiser, optimizer, schedule, encoders)
    return Run(out=out, config=config, fam=fam, accelerator=accelerator, pipe=pipe, source=source, adapter=adapter,
               analyzer=analyzer, manifest=manifest, data=data, cache=cache, prior=prior, model=model,
               optimizer=optimizer, schedule=schedule, params=params, encoders=encoders,
               splits=splits, held_faces=[subjects[p] for p in splits.validation if p in subjects],
               train_faces=[subjects[s.file] for s in data.samples if s.file in subjects],
               start=start, curve=curve, losses=losses, probe_embeds=probe_embeds)


def train_loop(run: Run, progress: bool, callback=None) -> None:
    """6. Optimizer steps of ``gradient_accumulation`` micro-batches each; randomness per micro-batch
    from (seed, micro-step), so a resumed run draws what the original would."""
    config, accelerator = run.config, run.accelerator
    started = time.perf_counter()
    step_times: list[float] = []  # optimizer steps alone (no probes, no saves): the speed that is reported
    probe_times: list[float] = []
    bar = tqdm(range(run.start, config.steps), initial=run.start, total=config.steps, desc="training",
               disable=not progress, unit="step")
    lora_layers = lora_layers_of(run.adapter.denoiser, *run.encoders)
    for step in bar:
        step_started = time.perf_counter()
        run.where = f"at step {step + 1}"
        step_loss = torch.zeros((), device=accelerator.device)
        for micro in range(config.gradient_accumulation):
            # Under `accelerate launch`, each process draws its own batch (index 0 = the single-process draw).
            draw = step * config.gradient_accumulation + micro
            seed = config.seed * 1_000_003 + draw + 7_919 * accelerator.process_index
            generator = torch.Generator().manual_seed(seed)
            with (accelerator.accumulate(run.model), accelerator.autocast(), attention_kernels(config.attention),
                  lora_inputs_uncast(lora_layers)):
                loss = run.adapter.loss(run.model, *run.cache.draw(run.adapter, config.batch_size, generator),
                                        generator)
                if run.prior is not None:  # DreamBooth: the class prior keeps the base model's idea of a <class>
                    loss = loss + config.prior_loss_weight * run.adapter.loss(
                        run.model, *run.prior.draw(run.adapter, config.batch_size, generator), generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(run.params, config.max_grad_norm)
                run.optimizer.step()
                run.schedule.step()
                run.optimizer.zero_grad(set_to_none=True)
            step_loss += loss.detach().float() / config.gradient_accumulation
        step_loss = float(step_loss)  # the step's one host read: the host waits for the GPU here, once
        step_times.append(time.perf_counter() - step_started)
        run.losses.append(step_loss)
        if not np.isfinite(step_loss):
            raise WorkbenchError(f"loss became {step_loss} at step {step + 1}; lower --learning-rate or use "
                                 "--precision bf16/fp32" + ("; on a GPU, try --attention no-cudnn (cuDNN attention's "
                                 "backward has NaN bugs on Hopper cards)." if config.attention == "auto" else "."))
        per_step = float(np.mean(step_times))
        bar.set_postfix(loss=f"{step_loss:.4f}", s_per_step=f"{per_step:.2f}")
        if config.log_with:
            accelerator.log({"train/loss": step_loss, "train/lr": run.schedule.get_last_lr()[0]}, step=step + 1)
        if callback is not None and step + 1 < config.steps:
            try:
                callback(step + 1, config.steps, unit="step", loss=step_loss)
            except KeyboardInterrupt:  # stop between steps, keeping this step as a checkpoint to resume from
                if accelerator.is_main_process:
                    save_checkpoint(run.out, run.pipe, run.adapter, run.optimizer, run.schedule, step + 1,
                                    run.curve, run.losses, run.encoders, config)
                raise
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            probe_started = time.perf_counter()
            run.where = f"rendering the checkpoint probes at step {step + 1}"
            if accelerator.is_main_process:  # one process probes and writes; the others wait for it
                # Probes run eager: a compiled run would otherwise compile its blocks again for inference
                # (grad mode is part of a graph's guards) only to render four images per checkpoint.
                with plain_forward(run.model), torch.compiler.set_stance("force_eager"):
                    row = probe_checkpoint(run.pipe, run.adapter, config, run.fam, run.data, run.analyzer,
                                           run.held_faces, run.train_faces, step + 1, run.out / "validation",
                                           run.losses, run.probe_embeds)
                run.curve.append(row)
                if config.log_with:
                    accelerator.log({f"validation/{k}": v for k, v in row.items()
                                     if k != "step" and isinstance(v, (int, float))}, step=step + 1)
                    probes = sorted((run.out / "validation").glob(f"step-{step + 1:06d}-probe-*.png"))
                    tracking.log_images(accelerator.trackers, [Image.open(p) for p in probes], step + 1)
                save_checkpoint(run.out, run.pipe, run.adapter, run.optimizer, run.schedule, step + 1, run.curve,
                                run.losses, run.encoders, config)
            accelerator.wait_for_everyone()
            probe_times.append(time.perf_counter() - probe_started)
    timings = run.manifest.timings
    if step_times or probe_times or "train_seconds" not in timings:  # a resumed finish keeps the run's times
        timings["train_seconds"] = time.perf_counter() - started
    if probe_times:  # checkpoints: probe images rendered and scored, the checkpoint written
        timings["checkpoint_seconds"], timings["checkpoints"] = float(sum(probe_times)), float(len(probe_times))
    if step_times:  # the median: the first steps pay for kernel selection and allocator warm-up
        timings["seconds_per_step"] = median = float(np.median(step_times))
        timings["first_step_seconds"] = step_times[0]
        if config.compile:  # what compiling cost this process (a resumed run compiles again)
            timings["compile_seconds"] = max(0.0, step_times[0] - median)
    if accelerator.is_main_process:  # the loop's timings survive a kill during the finish
        write_manifest(run.out, run.manifest)


def finish(run: Run, selfies) -> Likeness:
    """7. Choose the checkpoint and write the Likeness. Every file appears whole (stage, then rename), the
    manifest's ``done`` last: a kill at any instant leaves a folder whose rerun writes the finish again from
    the last checkpoint, without training."""
    out, fam, config = run.out, run.fam, run.config
    chosen, reason = select_checkpoint(run.curve)
    atomic_write(out / LORA_FILE, lambda tmp: shutil.copyfile(out / "checkpoints" / f"step-{chosen:06d}" / LORA_FILE,
                                                              tmp))
    kohya = export_kohya(out / LORA_FILE, out / KOHYA_FILE, fam, config) if kohya_base_version(fam) else None
    write_table(__import__("pandas").DataFrame(run.curve), out / "curve.parquet")
    card = {"family": fam.name, "base": config.base, "model": run.source.as_dict(), "token": config.token,
            "class_word": config.class_word, "config": config.model_dump(), "chosen_step": chosen,
            "selection_reason": reason, "curve": run.curve,
            "recognizer": f"{run.analyzer.name} ({run.analyzer.version})",
            "recognizer_model_sha256": getattr(run.analyzer, "model_hash", None),
            **run.splits.as_card(),
            "captions": {s.file.name: s.caption for s in run.data.samples},
            "kohya_export": kohya.name if kohya else None, "versions": run.manifest.versions,
            "trackers": tracking.run_ids(run.accelerator.trackers), "memory": run.manifest.outputs.get("memory"),
            "licence_notes": fam.licence, "tiny": fam.random_weights}
    atomic_write_json(out / CARD_FILE, card)
    run.accelerator.end_training()
    run.manifest.status = "done"
    run.manifest.outputs.update(chosen_step=chosen, lora=LORA_FILE, kohya=kohya.name if kohya else None)
    write_manifest(out, run.manifest)
    run.accelerator.wait_for_everyone()
    return Likeness.load(out)


WEIGHT_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def new_accelerator(config: TrainConfig, cpu: bool, project_dir: Path | None = None):
    """An Accelerator for this run's precision. accelerate keeps one process-wide state and refuses a
    second precision ("AcceleratorState has already been initialized"); a training after another of a
    different precision in one process (an app session, a notebook) resets it. The distributed state
    (``PartialState``) is kept, so this is safe under ``accelerate launch``."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(mixed_precision="no" if config.precision == "fp32" else config.precision,
                       gradient_accumulation_steps=config.gradient_accumulation, cpu=cpu,
                       log_with=config.log_with or None, project_dir=str(project_dir) if project_dir else None)


@contextlib.contextmanager
def plain_forward(model):
    """Render probes as inference does: the denoiser in its weight dtype, not through accelerate's
    autocast wrapper, which returns fp32 latents that a half-precision VAE then refuses ("Input type
    (float) and bias type (c10::BFloat16) should be the same")."""
    wrapped = model.__dict__.get("forward")
    original = getattr(model, "_original_forward", None)
    if wrapped is None or original is None:
        yield
        return
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped


def lora_layers_of(*models: torch.nn.Module) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for model in models for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def lora_inputs_uncast(layers: list):
    """Inside the training step, peft's LoRA layers leave their input in the base's dtype. By default each
    casts its fp16/bf16 input up to the fp32 LoRA weights, and autocast casts it straight back down for the
    matmul: two copies of the activation per layer and two more in backward, for the same numbers (fp16 ->
    fp32 -> fp16 is exact). Copy kernels were 17 % of the SDXL step's GPU time on an H100, and the step is
    bound by its kernel launches. Only under autocast: outside it (fp32 LoRA on a half base) the cast is
    needed, so each layer's flag is put back after each micro-step. (peft's own ``disable_input_dtype_casting``
    does this by walking every module at each call: too slow for a launch-bound step.) The layers ``lean_lora``
    covers never cast their input under autocast: this is for the others (a quantized base's)."""
    before = [layer.cast_input_dtype_enabled for layer in layers]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    try:
        yield
    finally:
        for layer, enabled in zip(layers, before, strict=True):
            layer.cast_input_dtype_enabled = enabled


def make_optimizer(params: list, config: TrainConfig, device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA), or bitsandbytes' 8-bit AdamW in the low-memory tier."""
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise WorkbenchError("the low-memory tier uses 8-bit AdamW: `pip install bitsandbytes`, or pass "
                                 "--memory balanced (or --optimizer adamw).") from exc
        return bnb.optim.AdamW8bit(params, lr=config.learning_rate, weight_decay=1e-2)
    fused = torch.device(device).type == "cuda"
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2, fused=fused or None)


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
        if "captions" in cond:
            return latents[upload(index, latents)], step_cond(adapter, cond, index)
        index = upload(index, latents)  # once for the latents and every conditioning tensor
        return latents[index], batch_cond(cond, index)


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

    if not get_architecture(adapter.arch).text_encoder_lora:
        from ..models.architectures import MODULES

        able = "/".join(name for name in MODULES if get_architecture(name).text_encoder_lora)
        raise WorkbenchError(f"--train-text-encoder is for {able} families; {fam.name} ({adapter.arch}) trains its "
                             "denoiser only (as diffusers' and ai-toolkit's FLUX LoRA recipes do).")
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
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    if not row.get("file") or row.get("caption") is None:
                        raise WorkbenchError(f"{path}:{line}: needs columns 'file' and 'caption'.")
                    captions[row["file"]] = row["caption"].strip()
        except UnicodeDecodeError as exc:
            raise WorkbenchError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV.") from None
        except csv.Error as exc:
            raise WorkbenchError(f"{path}: not a readable CSV ({exc}); give columns file,caption.") from None
    else:
        for photo in files:
            sidecar = photo.with_suffix(".txt")
            if sidecar.is_symlink():  # a link may point anywhere on the server: never read
                raise WorkbenchError(f"{sidecar}: the caption is a link; put the caption text in the file itself.")
            if sidecar.is_file():
                try:
                    captions[photo.name] = sidecar.read_text(encoding="utf-8").strip()
                except UnicodeDecodeError as exc:
                    raise WorkbenchError(f"{sidecar}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
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
            from ..images import encode_png
            from ..store import atomic_write_bytes

            atomic_write_bytes(path, encode_png(image))
        from PIL import Image

        samples.append(Sample(file=path, image=Image.open(path).convert("RGB"), caption=prompt))
    return TrainingSet(samples=samples, held_out=[], token="", class_word=config.class_word)


def add_lora(pipe, adapter, config: TrainConfig, fam) -> tuple[Any, list, list]:
    """Freeze the base and add the LoRA (fp32 weights, trained under fp16/bf16 autocast); returns the
    denoiser, the LoRA'd text encoders (if trained) and every trainable parameter."""
    from peft import LoraConfig

    for module in (pipe.vae, adapter.denoiser, *adapter.text_encoders()):
        module.requires_grad_(False)
    denoiser = adapter.denoiser
    torch.manual_seed(config.seed)  # the LoRA's gaussian init: same seed, same starting weights
    denoiser.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                                    target_modules=list(fam.lora_targets)))
    for param in denoiser.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    # Train mode from the first step: from_pretrained returns eval mode and the probes switch to train
    # mode afterwards; attention kernels differ between the two, so a resumed run (eval until its first
    # probe) drifted from an uninterrupted one by ~1e-8.
    denoiser.train()
    encoders = add_text_encoder_lora(adapter, config, fam) if config.train_text_encoder else []
    return denoiser, encoders, [p for m in (denoiser, *encoders) for p in m.parameters() if p.requires_grad]


def training_files(selfies, report, config: TrainConfig) -> list[Path]:
    """The photos the selfie check passed, or with ``ignore_gate`` every readable one."""
    files = report.training_files
    if config.ignore_gate:  # research: train on every readable photo, whatever the gate said
        files = [report.folder / p.file for p in report.photos if "unreadable" not in p.flags]
    if not files:
        raise WorkbenchError(f"{selfies}: none of the photos can be used for training ({report.verdict}); "
                             "see the check's advice.")
    return files


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
    layers = {adapter.lora_owner_kwarg(): adapter.lora_state_to_save(peft_state, convert_state_dict_to_diffusers)}
    metadata = {adapter.lora_owner_kwarg().replace("_layers", "_adapter_metadata"):
                adapter.denoiser.peft_config["default"].to_dict()}
    for kwarg, encoder, state in zip(adapter.text_encoder_lora_kwargs(), encoders, encoder_states, strict=False):
        layers[kwarg] = convert_state_dict_to_diffusers(state)
        metadata[kwarg.replace("_layers", "_adapter_metadata")] = encoder.peft_config["default"].to_dict()
    target = out / "checkpoints" / f"step-{step:06d}"
    staging = out / "checkpoints" / f".step-{step:06d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if config is not None:  # what these weights were trained with: a resume must match it (check_resumable)
        (staging / CONFIG_FILE).write_text(json.dumps(config.model_dump(mode="json"), indent=1, sort_keys=True))
    type(pipe).save_lora_weights(staging, **layers, **_jsonable(metadata), weight_name=LORA_FILE,
                                 safe_serialization=True)
    canonical_safetensors(staging / LORA_FILE)
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


def last_checkpoint(out: Path) -> int | None:
    """The step of the newest complete checkpoint (one with its resume state), if any."""
    done = sorted((out / "checkpoints").glob("step-*/" + STATE_FILE)) if (out / "checkpoints").is_dir() else []
    return int(done[-1].parent.name.removeprefix("step-")) if done else None


def saved_config(out: Path) -> dict[str, Any] | None:
    """The settings the newest checkpoint was trained with (None: no checkpoint, or one older than the record)."""
    step = last_checkpoint(out)
    saved = out / "checkpoints" / f"step-{step:06d}" / CONFIG_FILE if step else None
    if saved is None or not saved.is_file():
        return None
    try:
        config = json.loads(saved.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a mapping")
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged_checkpoint(saved, exc) from None
    return config


def damaged_checkpoint(path: Path, exc: BaseException) -> ArtifactError:
    return ArtifactError(f"{path}: damaged ({type(exc).__name__}); remove the folder {path.parent.name} to resume from "
                         "the checkpoint before it, or retrain with --replace.")


def check_resumable(out: Path, config: TrainConfig, photos: dict[str, str] | None = None,
                    trained_on: dict[str, str] | None = None) -> None:
    """Refuse to resume checkpoints trained with other settings or other photos (another rank fails deep in
    peft; another learning rate, batch or selfie set would silently mix two trainings in one LoRA). Memory
    settings may change. Photos compare by content: a moved folder still resumes."""
    saved = saved_config(out)
    if saved is None:
        return
    step, asked = last_checkpoint(out), config.model_dump(mode="json")
    if photos is not None and trained_on is not None and sorted(photos.values()) != sorted(trained_on.values()):
        added, gone = set(photos.values()) - set(trained_on.values()), set(trained_on.values()) - set(photos.values())
        raise ConfigError(f"{out} has checkpoints up to step {step} trained on other photos ({len(added)} new or "
                          f"changed, {len(gone)} gone since); train into a new --out, or restore the photos.")
    changed = sorted(k for k in saved.keys() | asked.keys()
                     if k not in RESUMABLE_CHANGES and saved.get(k) != asked.get(k))
    if changed:
        was = ", ".join(f"{k} {saved.get(k)!r}" for k in changed)
        now = ", ".join(f"{k} {asked.get(k)!r}" for k in changed)
        raise ConfigError(f"{out} has checkpoints up to step {step} trained with {was}; this run asks for {now}. "
                          "Resume with the same settings (memory settings may change), or train into a new --out.")


def memory_report(fam, config: TrainConfig, device: str) -> dict[str, Any]:
    """The memory settings and, on a GPU, the estimated peak beside the free memory at the start: the card's
    record of why the run was set up as it was."""
    report = {k: getattr(config, k) for k in ("memory", "batch_size", "gradient_checkpointing", "optimizer",
                                              "quantize_base", "vae")}
    report["estimate_gb"] = report["free_gb"] = None
    if device.startswith("cuda") and not fam.tiny:
        report["estimate_gb"] = round(config_peak_gb(fam, config), 1)
        report["free_gb"] = round(torch.cuda.mem_get_info(torch.device(device).index or 0)[0] / 1024**3, 1)
    return report


def resume(out: Path, denoiser, optimizer, schedule, encoders: list | None = None) -> tuple[int, list, list]:
    """Load the newest complete checkpoint, if any: (next step, curve so far, losses so far)."""
    from peft import set_peft_model_state_dict

    step = last_checkpoint(out)
    if step is None:
        return 0, [], []
    state_file = out / "checkpoints" / f"step-{step:06d}" / STATE_FILE
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        set_peft_model_state_dict(denoiser, state["lora"])
        for encoder, encoder_state in zip(encoders or [], state.get("text_encoders", []), strict=False):
            set_peft_model_state_dict(encoder, encoder_state)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        curve, losses, step = list(state["curve"]), list(state["losses"]), int(state["step"])
    except Exception as exc:  # noqa: BLE001 - torch.load and load_state_dict raise many types for a bad file
        raise damaged_checkpoint(state_file, exc) from None
    print(f"resuming from {state_file.parent.name}")
    return step, curve, losses
