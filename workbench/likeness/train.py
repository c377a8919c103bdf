"""DreamBooth-LoRA training of a likeness, read top to bottom:
setup (config -> checked selfies -> accelerator + pipeline -> freeze base, add LoRA -> caches -> optimizer,
resume) -> loop (checkpoint + held-out probe every N steps) -> finish (choose the checkpoint, save the Likeness).
"""

from __future__ import annotations

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
from ..errors import WorkbenchError
from ..faces import get_analyzer
from ..lineage import link, photo_hashes, refuse_other_inputs
from ..models import get_family, load_pipeline
from ..models.architectures import adapter_for
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
from .caches import Cache, build_caches, class_images
from .card import CARD_FILE, KOHYA_FILE, LORA_FILE, Likeness
from .checkpoints import check_resumable, last_checkpoint, resume, save_checkpoint, saved_config
from .config import TrainConfig
from .export import export_kohya, kohya_base_version
from .lean_lora import lean_lora
from .lora import add_lora, lora_inputs_uncast, lora_layers_of, offload_encoders
from .memory import out_of_memory_advice
from .prepare import load_captions, prepare_training_set, training_files
from .probe import encode_probes, probe_checkpoint, select_checkpoint
from .reuse import likeness_differences, reuse_check, training_conflicts  # noqa: F401 (the public entry lives here too)
from .runtime import WEIGHT_DTYPES, make_optimizer, memory_report, new_accelerator, plain_forward
from .splits import Splits, make_splits


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
            layers = lora_layers_of(run.adapter.denoiser, *run.encoders) if run.config.lean_lora else []
            with lean_lora(layers):  # opt-in (--lean-lora); with no layers peft's own forward runs
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
    split_seed = config.seed if config.split_seed is None else config.split_seed
    splits = make_splits(files, boxes, config.validation, config.test, split_seed, config.splits)
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


