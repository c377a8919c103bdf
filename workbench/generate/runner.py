"""The grid runner: likeness x packs x samplers x steps x seeds -> PNGs + one table row each.

Deterministic per (prompt, seed) whatever the batch: every image has its own CPU generator. The
pipeline and LoRA load once per run. Re-running renders only what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import retention
from ..arms import get_arm
from ..artifacts import IMAGES, read_images
from ..config import Settings
from ..errors import ArtifactError, ConfigError, WorkbenchError
from ..interrupts import on_step_end
from ..likeness.card import LORA_FILE, Likeness
from ..lineage import describe_changes, link, refuse_other_inputs
from ..models import get_family, load_pipeline
from ..models.architectures import get_architecture
from ..models.regional import check_compile, compile_denoiser, denoiser_of, is_compiled
from ..packs import Pack, get_pack
from ..store import Manifest, atomic_write_bytes, read_manifest, stage, write_manifest, write_table
from .pngmeta import png_bytes
from .samplers import get_sampler, make_scheduler

TABLE = IMAGES


@dataclass
class GenerationRun:
    path: Path
    table: pd.DataFrame

    @classmethod
    def load(cls, path: str | os.PathLike) -> GenerationRun:
        path = Path(path)
        if not (path / TABLE).is_file():
            raise WorkbenchError(f"{path}: not a generation run (no {TABLE}); render one with `workbench generate`.")
        return cls(path, read_table_checked(path))


def load_run(path: str | os.PathLike) -> GenerationRun:
    """A generation run folder (``images.parquet`` + PNGs), its table checked."""
    return GenerationRun.load(path)


def read_table_checked(out: Path) -> pd.DataFrame:
    """A run's ``images.parquet`` (empty when there is none yet), or an ``ArtifactError`` naming it when it
    is not a table of this run's images (damaged, other columns, paths that leave the run)."""
    return read_images(out) if (Path(out) / TABLE).is_file() else pd.DataFrame()


@dataclass
class Request:
    """A generation request resolved and checked, before anything loads."""

    likeness: Likeness | None
    arm: Any
    fam: Any
    base: str | None
    subject: str
    packs: list[Pack]
    jobs: list[Job]
    identity: dict[str, Any]


def plan_request(likeness, packs, samplers=None, steps=None, seeds=(0,), guidance=None, family=None, base=None,
                 size=None, prompts_per_pack=None, batch_size=4, arm="likeness", ip_scale=0.6,
                 detailer=None) -> Request:
    """Resolve a ``generate`` call (likeness, arm, family, packs) into its grid of images and check it: known
    samplers for this family, every number within ``limits.py``. The app calls it before queuing a job."""
    if likeness is not None and not isinstance(likeness, Likeness):
        likeness = Likeness.load(likeness)
    chosen = get_arm(arm if likeness is not None else "base")
    if likeness is None and arm not in ("base", "likeness"):
        raise ConfigError(f"the {arm} arm takes its reference photos from a likeness; pass one.")
    from ..limits import check_value

    check_value("ip_scale", ip_scale, "IP-Adapter scale")
    if seeds is not None:
        check_value("seeds_per_job", len(list(seeds)) or 1, "number of seeds")
    fam = get_family(likeness.family if likeness else (family or "tiny-sd"))
    base = likeness.base if likeness else base
    class_word = likeness.card["class_word"] if likeness else "person"
    subject = likeness.subject if likeness and chosen.lora else class_word  # the trigger means nothing without it
    pack_objs = [p if isinstance(p, Pack) else get_pack(p) for p in packs]
    jobs = plan_jobs(pack_objs, samplers, steps, seeds, subject, class_word, guidance, size, prompts_per_pack, fam)
    for name in sorted({j.sampler for j in jobs}):
        get_sampler(name, fam.arch)  # refuse a scheduler that cannot drive this family, before loading
    check_grid(jobs, batch_size)
    return Request(likeness, chosen, fam, base, subject, pack_objs, jobs,
                   run_identity(likeness, fam, base, chosen, ip_scale, detailer))


def reuse_check(out: str | os.PathLike, request: Request) -> tuple[Manifest | None, list[str]]:
    """The run folder's manifest and what differs between what its images were made with and this request
    (empty: the run may grow). A folder with no finished image has nothing to protect."""
    out = Path(out)
    manifest = read_manifest(out)
    if manifest is not None and manifest.kind != "generation":
        raise ConfigError(f"{out} holds a {manifest.kind}, not a generation run; render into another --out.")
    if manifest is None:
        return None, []
    recorded = recorded_identity(manifest, request.identity, request.likeness)
    key = "likeness_lora_sha256"
    differences = describe_changes({k: v for k, v in request.identity.items() if k != key}, recorded)
    if recorded.get(key) != request.identity[key]:
        then, now = recorded.get(key), request.identity[key]
        made = Path(manifest.inputs["likeness"]).name if manifest.inputs.get("likeness") else "no likeness"
        asked = request.likeness.path.name if request.likeness else "no likeness"
        differences.insert(0, f"images of {made}{f' (LoRA {then[:12]})' if then else ''}; asked: {asked}"
                              f"{f' (LoRA {now[:12]})' if now else ''}")
    return manifest, differences if differences and not read_table_checked(out).empty else []


def generation_conflicts(out: str | os.PathLike, likeness, packs, **grid: Any) -> list[str]:
    """What ``generate(likeness, packs, out, **grid)`` would refuse, checked without loading a model: an
    unknown sampler or an out-of-bounds number raises ``ConfigError``; the list says what differs from the
    images ``out`` already holds (empty: ``out`` is new, or may grow with this grid)."""
    keys = ("samplers", "steps", "seeds", "guidance", "family", "base", "size", "prompts_per_pack", "batch_size", "arm",
            "ip_scale", "detailer")
    return reuse_check(out, plan_request(likeness, packs, **{k: v for k, v in grid.items() if k in keys}))[1]


def run_identity(likeness: Likeness | None, fam, base: str | None, arm, ip_scale: float,
                 detailer: dict | None) -> dict[str, Any]:
    """What a run's images are made with, by content: a run folder only ever holds images of one of these."""
    from ..provenance import file_sha256

    return {"likeness_lora_sha256": file_sha256(likeness.lora_path) if likeness else None, "family": fam.name,
            "base": base, "arm": arm.name, "ip_scale": ip_scale if arm.ip_adapter else None, "detailer": detailer}


def recorded_identity(manifest: Manifest, asked: dict[str, Any], likeness: Likeness | None) -> dict[str, Any]:
    """What a run folder's images were made with. Runs written before ``made_with`` recorded the likeness by
    path: the same path counts as the same likeness."""
    if "made_with" in manifest.inputs:
        return manifest.inputs["made_with"]
    config = manifest.config
    recorded = {key: config.get(key) for key in ("family", "base", "arm", "ip_scale", "detailer")}
    recorded["arm"] = recorded["arm"] or ("likeness" if manifest.inputs.get("likeness") else "base")
    same_path = likeness is not None and manifest.inputs.get("likeness") == str(likeness.path)
    recorded["likeness_lora_sha256"] = asked["likeness_lora_sha256"] if same_path else None
    return recorded


def check_grid(jobs: list[Job], batch_size: int) -> None:
    """The grid within the limits (``limits.py``): images per run call, steps, size, seeds, batch."""
    from ..limits import check_value

    check_value("images_per_job", len(jobs), "images in this grid (packs x prompts x samplers x steps x seeds)")
    check_value("batch_size", batch_size, "batch size")
    for job in jobs:
        check_value("inference_steps", job.steps, f"steps of {job.pack}/{job.prompt_id}")
        check_value("image_size", job.size, f"size of {job.pack}/{job.prompt_id}")
        check_value("seed", job.seed, "seed")
        check_value("guidance", job.guidance, f"guidance of {job.pack}/{job.prompt_id}")


@dataclass(frozen=True)
class Job:
    pack: str
    prompt_id: str
    prompt: str
    negative: str
    sampler: str
    steps: int
    seed: int
    guidance: float
    size: int
    prompt_plain: str = ""  # the prompt with the trigger replaced by the class word: CLIP score's text

    @property
    def image_id(self) -> str:
        key = "|".join(str(v) for v in (self.pack, self.prompt_id, self.prompt, self.negative, self.sampler,
                                          self.steps, self.seed, self.guidance, self.size))
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    @property
    def relpath(self) -> str:
        return f"{self.pack}/{self.prompt_id}-{self.sampler}-{self.steps}s-g{self.guidance:g}-seed{self.seed}.png"


def plan_jobs(packs: Sequence[Pack], samplers: Sequence[str] | None, steps: Sequence[int] | None,
              seeds: Sequence[int], subject: str, class_word: str, guidance: float | None, size: int | None,
              prompts_per_pack: int | None, family=None) -> list[Job]:
    """Every image of the grid. Settings resolve as: explicit argument > prompt > pack > family."""
    jobs = []
    for pack in packs:
        for entry in pack.prompts[:prompts_per_pack]:
            text = entry.text_for(class_word).format(subject=subject)
            plain = entry.text_for(class_word).format(subject=class_word)
            negative = entry.negative if entry.negative is not None else pack.negative_prompt
            entry_samplers = list(samplers or [entry.sampler or pack.sampler or family.sampler])
            entry_steps = list(steps or [entry.steps or pack.steps or family.steps])
            scale = guidance if guidance is not None else next(
                g for g in (entry.guidance, pack.guidance, family.guidance) if g is not None)
            side = size or entry.size or pack.size or family.resolution
            for sampler, n, seed in itertools.product(entry_samplers, entry_steps, seeds):
                for k in range(pack.images_per_prompt):
                    jobs.append(Job(pack.name, entry.id, text, negative, sampler, int(n), int(seed) + k,
                                    float(scale), int(side), plain))
    return jobs


def generate(likeness: Likeness | str | os.PathLike | None, packs: Sequence[str | Pack], out: str | os.PathLike,
             samplers: Sequence[str] | None = None, steps: Sequence[int] | None = None,
             seeds: Sequence[int] = (0,), guidance: float | None = None, family: str | None = None,
             base: str | None = None, size: int | None = None, prompts_per_pack: int | None = None,
             batch_size: int = 4, settings: Settings | None = None, progress: bool = True,
             compile: bool = False, renderer: tuple[Any, Any] | None = None, callback=None,
             arm: str = "likeness", ip_scale: float = 0.6, detailer: dict | None = None,
             fp8: bool | None = None, replace: bool = False) -> GenerationRun:
    """Render the grid into ``out``. ``likeness=None`` renders the base model alone (baseline arm).
    The LoRA is fused into the base weights for rendering (no per-layer LoRA matmuls); ``compile``
    compiles the denoiser's repeated blocks (regional ``torch.compile``); a one-step warm-up render pays
    the compilation, kept apart in the manifest's ``timings.compile_seconds``. ``fp8`` renders with the
    blocks' linears in float8 (``models/fp8.py``; Ada or Hopper GPUs; not exact, so a run folder keeps
    the setting it was started with); with ``renderer=`` it is read from the renderer, and a
    contradicting ``fp8`` is refused.

    A run folder grows with new packs, samplers, steps and seeds, but only from what it was made with (the
    likeness by content, family, base, arm and its settings); other inputs are refused, or with ``replace``
    the old run is deleted first."""
    settings = settings or Settings()
    out = Path(out)
    if renderer is not None:
        from ..models.fp8 import uses_fp8

        loaded = uses_fp8(denoiser_of(renderer[0]))
        if fp8 is not None and fp8 != loaded:
            raise ConfigError(f"fp8={fp8}, but the renderer was loaded {'with' if loaded else 'without'} fp8; "
                              "pass the same fp8 to load_renderer.")
        fp8 = loaded
    fp8 = bool(fp8)
    # 1. resolve what to render, within the bounds, and whether ``out`` may take it
    request = plan_request(likeness, packs, samplers, steps, seeds, guidance, family, base, size, prompts_per_pack,
                           batch_size, arm, ip_scale, detailer)
    likeness, chosen, fam, base, subject, pack_objs, jobs, identity = (
        request.likeness, request.arm, request.fam, request.base, request.subject, request.packs, request.jobs,
        request.identity)
    manifest, differences = reuse_check(out, request)
    if differences:
        if not replace:
            refuse_other_inputs(out, "generation run", differences)
        receipt = retention.replace(out, settings.home, "generation")
        print(f"replaced {out}: {len(receipt.removed_files)} files removed")
        manifest = None
    manifest = manifest or Manifest(kind="generation")
    with stage(out, manifest):  # one writer per run folder; a crash or Ctrl-C is recorded, never 'running'
        # 2. what is already done: read under the lock, so two writers never both render the same image
        done = read_table_checked(out)
        rows = {r["image_id"]: r for r in done.to_dict("records") if (out / r["path"]).is_file()}
        todo = [j for j in jobs if j.image_id not in rows]
        # The VAE decodes one image at a time: at 1024 px it holds ~1.5 GB per image in half precision and 3 GB
        # in fp32 (SDXL's fp16 VAE upcasts), so a batch of 4 decoded at once needed 12 GB beside the weights,
        # past a 16 GB card (likeness/footprint.py traces it). Folders rendered before keep their batched decode,
        # so a resumed image stays bit-identical (the two differ by a level of rounding).
        vae_decode = manifest.config.get("vae_decode") or ("batched" if rows else "sliced")
        started_with = "with" if manifest.config.get("fp8", False) else "without"
        if rows and (started_with == "with") != fp8:
            raise ConfigError(f"{out} was rendered {started_with} fp8, which changes the pixels; resume it "
                              f"{started_with} --fp8 or render into another --out.")
        manifest.inputs = {"likeness": str(likeness.path) if likeness else None,
                           "packs": sorted({*manifest.inputs.get("packs", []), *(p.name for p in pack_objs)}),
                           "made_with": identity}
        manifest.links = {"likeness": link(likeness.path, out)} if likeness else {}
        manifest.config = {"family": fam.name, "base": base, "samplers": sorted({j.sampler for j in jobs}),
                           "steps": sorted({j.steps for j in jobs}), "guidance": guidance, "size": size,
                           "prompts_per_pack": prompts_per_pack, "batch_size": batch_size, "arm": chosen.name,
                           "arm_description": chosen.describe(ip_scale),
                           "ip_scale": ip_scale if chosen.ip_adapter else None,
                           "detailer": detailer, "licence_notes": chosen.licence or None, "fp8": fp8,
                           "vae_decode": vae_decode}
        manifest.seeds, manifest.status, manifest.error = list(seeds), "running", None
        write_manifest(out, manifest)
        packs_detailer = next((p.detailer for p in pack_objs if p.detailer is not None), None)
        context = RenderContext(likeness, chosen, ip_scale, detailer if detailer is not None else packs_detailer,
                                subject=subject)
        render_pending(jobs, rows, todo, out, manifest, fam, likeness, base, settings, batch_size, progress, compile,
                       renderer, callback, context, fp8=fp8, vae_decode=vae_decode)
        # 4. the table: images of earlier renders with other settings stay in the record (first), then this
        # plan's, in plan order. A run folder only ever gains images; the manifest describes all of them.
        planned = {j.image_id for j in jobs}
        earlier = [r for key, r in rows.items() if key not in planned]
        table = pd.DataFrame(earlier + [rows[j.image_id] for j in jobs if j.image_id in rows])
        write_table(table, out / TABLE)
        manifest.config.update(samplers=sorted(set(table["sampler"])),
                               steps=sorted(int(n) for n in set(table["steps"])))
        manifest.seeds = sorted(int(n) for n in set(table["seed"]))
        manifest.status, manifest.outputs["images"] = "done", len(table)
        write_manifest(out, manifest)
    return GenerationRun(out, table)


def load_renderer(likeness: Likeness | None, fam, base: str | None, settings: Settings,
                  compile: bool = False, fp8: bool = False) -> tuple[Any, Any]:
    """``(pipeline, source)`` ready to render a likeness: the LoRA fused into the base weights (no
    per-layer LoRA matmuls), optionally the blocks' linears in fp8, optionally regionally compiled. Load
    it once and pass it to several ``generate`` calls (``renderer=``) to keep load time out of their
    timings."""
    if fp8:
        from ..models.fp8 import check_fp8_device

        check_fp8_device(settings.resolved_device())
    if compile:
        check_compile(settings.resolved_device())
    pipe, source = load_pipeline(fam, base, settings)
    if likeness:
        try:
            pipe.load_lora_weights(likeness.path, weight_name=LORA_FILE, adapter_name="likeness")
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # shapes or names of another model
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{likeness.lora_path}: does not fit the {fam.name} model ({first}); it was trained "
                                "for another model or changed since. Retrain the likeness.") from None
        pipe.fuse_lora(lora_scale=1.0)
        pipe.unload_lora_weights()  # the fused weights stay; the LoRA layers go
    if fp8:
        from ..models.fp8 import quantize_fp8

        quantize_fp8(denoiser_of(pipe))
    if compile:
        compile_denoiser(denoiser_of(pipe))
    return pipe, source


@dataclass
class RenderContext:
    """What every batch of a run shares besides the pipeline: the arm, its image prompt, the detailer."""

    likeness: Likeness | None
    arm: Any
    ip_scale: float = 0.6
    detailer: dict | None = None
    references: list | None = None  # face crops of the training photos (IP-Adapter arms)
    embeds: Any = None  # the training photos' face embedding (FaceID arms)
    subject: str = "person"


def render_pending(jobs, rows, todo, out, manifest, fam, likeness, base, settings, batch_size, progress, compile,
                   renderer, callback=None, context: RenderContext | None = None, fp8: bool = False,
                   vae_decode: str = "sliced") -> None:
    """3. Render what is missing. Batches are planned over the whole grid, never over what is left: CPU
    and GPU kernels may round differently at another batch size, so a resumed image is re-rendered in its
    original batch (only the missing files are written) and comes out bit-identical."""
    batches = plan_batches(jobs, batch_size)
    pending = [b for b in batches if any(j.image_id not in rows for j in b)]
    if not pending:
        return
    batch, done = None, 0  # what was being rendered, and how many images are written: for an out-of-memory error
    try:
        started = time.perf_counter()
        context = context or RenderContext(likeness, get_arm("likeness" if likeness else "base"))
        pipe, source = renderer or load_renderer(likeness if context.arm.lora else None, fam, base, settings, compile,
                                                 fp8)
        if context.arm.ip_adapter:
            from ..arms import identity_embedding, load_ip_adapter, reference_faces

            load_ip_adapter(pipe, fam, settings, context.ip_scale, faceid=context.arm.faceid)
            if context.arm.faceid:
                context.embeds = identity_embedding(context.likeness, fam, pipe.unet.dtype).to(pipe.device)
            else:
                context.references = reference_faces(context.likeness)
        manifest.timings["load_seconds"] = time.perf_counter() - started
        manifest.outputs["model"] = source.as_dict()
        if vae_decode == "sliced":  # per run: a renderer passed to several runs takes each run's setting
            pipe.vae.enable_slicing()
        else:
            pipe.vae.disable_slicing()
        scheduler_config = dict(pipe.scheduler.config)
        if is_compiled(denoiser_of(pipe)):  # every batch shape (a last, smaller one too) compiles once, here
            manifest.timings["compile_seconds"] = 0.0
            for batch in pending:
                manifest.timings["compile_seconds"] += warm_up(pipe, batch, fam, context)
        bar = tqdm(total=len(todo), desc="generating", disable=not progress, unit="img")
        current = None  # images are counted in `done`: a disabled tqdm bar never counts
        for batch in pending:
            if batch[0].sampler != current:
                current = batch[0].sampler
                pipe.scheduler = make_scheduler(current, fam.arch, scheduler_config)
            missing = {j.image_id for j in batch if j.image_id not in rows}
            rows.update(render_batch(pipe, batch, fam, likeness, source, out, only=missing, context=context,
                                     settings=settings))
            write_table(pd.DataFrame(list(rows.values())), out / TABLE)
            bar.update(len(missing))
            done += len(missing)
            if callback is not None:  # progress; a cancel stops here, every written image kept
                callback(done, len(todo), unit="image")
        bar.close()
    except torch.OutOfMemoryError as exc:
        raise render_out_of_memory(fam, batch, done) from exc


def render_out_of_memory(fam, batch: list[Job] | None, written: int) -> WorkbenchError:
    """What to do after the GPU ran out of memory: a smaller batch (a rerun renders only what is missing;
    the images already written stay), else a smaller size or a freer GPU."""
    kept = f"; the {written} images written are kept and a rerun renders only the missing ones" if written else ""
    free = "free the GPU (nvidia-smi lists what holds it)"
    if batch is None:
        fp8 = ", or render with --fp8 (Ada or Hopper cards: the blocks' weights in half the memory)"
        return WorkbenchError(f"the {fam.name} pipeline does not fit in the GPU's free memory{kept}. "
                              f"{free.capitalize()}{fp8 if get_architecture(fam.arch).fp8_helps else ''}.")
    size = batch[0].size
    if len(batch) > 1:
        return WorkbenchError(f"ran out of GPU memory rendering {len(batch)} images of {size} px in one pipeline call "
                              f"({fam.name}){kept}. Rerun with --batch-size {len(batch) // 2}.")
    return WorkbenchError(f"ran out of GPU memory rendering one image of {size} px ({fam.name}){kept}. Use a smaller "
                          f"--size, or {free}.")


def warm_up(pipe, batch: list[Job], fam, context: RenderContext) -> float:
    """Seconds of a one-step render at this batch's shape, which is when ``torch.compile`` compiles:
    the compile cost goes to the manifest on its own and the images' ``seconds`` are the steady state.
    Nothing is written. Once per pipeline and shape, so a passed ``renderer=`` warms up once."""
    shape = (len(batch), batch[0].size, batch[0].guidance)
    warmed = pipe.__dict__.setdefault("_workbench_warmed", set())
    if shape in warmed:
        return 0.0
    started = time.perf_counter()
    pipe(**pipeline_call(batch, fam, context), num_inference_steps=1, generator=torch.Generator("cpu").manual_seed(0))
    warmed.add(shape)
    return time.perf_counter() - started


def pipeline_call(batch: list[Job], fam, context: RenderContext | None) -> dict[str, Any]:
    """What a batch's pipeline call takes besides steps and seeds: prompts, size, guidance, the image
    prompt, and the negatives (FLUX.1-dev is guidance-distilled: no negative prompt, no CFG; its T5 length)."""
    architecture = get_architecture(fam.arch)
    kwargs: dict[str, Any] = {"prompt": [j.prompt for j in batch], "guidance_scale": batch[0].guidance,
                              "height": batch[0].size, "width": batch[0].size, **image_prompt(context),
                              **architecture.render_kwargs(fam)}
    if architecture.negative_prompt:
        kwargs["negative_prompt"] = [j.negative for j in batch]
    return kwargs


def plan_batches(jobs: list[Job], batch_size: int) -> list[list[Job]]:
    """Fixed batches: jobs that share a pipeline call (sampler, steps, guidance, size), in plan order."""
    key = lambda j: (j.sampler, j.steps, j.guidance, j.size)  # noqa: E731
    batches = []
    for _, group in itertools.groupby(sorted(jobs, key=key), key=key):
        group = list(group)
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    return batches


def render_batch(pipe, batch: list[Job], fam, likeness, source, out: Path,
                 only: set[str] | None = None, context: RenderContext | None = None,
                 settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """Render one batch; write (and return rows for) the images in ``only``, or all of them."""
    started = time.perf_counter()
    images = pipe(**pipeline_call(batch, fam, context), num_inference_steps=batch[0].steps,
                  generator=[torch.Generator("cpu").manual_seed(j.seed) for j in batch],
                  callback_on_step_end=on_step_end).images  # a cancel lands between denoising steps
    seconds = (time.perf_counter() - started) / len(batch)
    timing = timing_conditions(pipe)  # a time means little without the threads, device and load it ran under
    rows = {}
    for job, image in zip(batch, images, strict=True):
        if only is not None and job.image_id not in only:
            continue
        detail = {}
        if context is not None and context.detailer is not None:
            image, detail = run_detailer(pipe, image, job, fam, context, out)
        arm = context.arm.name if context is not None else ("likeness" if likeness else "base")
        ip_scale = context.ip_scale if context is not None and context.arm.ip_adapter else None
        params = {"prompt": job.prompt, "negative": job.negative, "steps": job.steps, "sampler": job.sampler,
                  "sampler_a1111": get_sampler(job.sampler, fam.arch).a1111, "guidance": job.guidance,
                  "seed": job.seed, "width": image.width, "height": image.height, "model": fam.name,
                  "base": source.location, "lora": likeness.path.name if likeness and arm != "base" else None,
                  "arm": arm, "ip_adapter_scale": ip_scale, **{k: v for k, v in detail.items() if k != "before_path"},
                  "pack": job.pack, "prompt_id": job.prompt_id, "image_id": job.image_id, "tiny": fam.random_weights}
        atomic_write_bytes(out / job.relpath, png_bytes(image, params))
        rows[job.image_id] = {"image_id": job.image_id, "pack": job.pack, "prompt_id": job.prompt_id,
                              "prompt": job.prompt, "prompt_plain": job.prompt_plain, "sampler": job.sampler,
                              "steps": job.steps, "seed": job.seed,
                              "guidance": job.guidance, "width": image.width, "height": image.height,
                              "path": job.relpath, "seconds": seconds, **timing, "family": fam.name,
                              "likeness": str(likeness.path) if likeness else None, "arm": arm, "ip_scale": ip_scale,
                              "detailer": detail.get("detailer"), "before_path": detail.get("before_path")}
    return rows


def timing_conditions(pipe) -> dict[str, Any]:
    """What a timing ran under: torch's threads, the device (and GPU), the batch's images, and the host's
    1-minute load average (under Ray, per-image times differed 50x from serial ones on a loaded box)."""
    device = str(getattr(pipe, "device", "cpu"))
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"threads": torch.get_num_threads(), "device": gpu or device, "load_avg": load}


def image_prompt(context: RenderContext | None) -> dict[str, Any]:
    """The IP-Adapter's input for every pipeline call of the run: face images, or a face embedding."""
    if context is None:
        return {}
    if context.embeds is not None:
        return {"ip_adapter_image_embeds": [context.embeds]}
    if context.references:
        return {"ip_adapter_image": [context.references]}  # one adapter, several reference faces
    return {}


def run_detailer(pipe, image, job: Job, fam, context: RenderContext, out: Path) -> tuple[Any, dict[str, Any]]:
    """The face detailer on one image: the result, and what it did (the pre-detailer image is kept beside
    it, so FaceSim before and after can be scored on the same image)."""
    from ..faces import get_analyzer
    from .detailer import detail_face, settings_of

    options = settings_of(context.detailer)
    extra = image_prompt(context)
    if get_architecture(fam.arch).negative_prompt:
        extra["negative_prompt"] = job.negative
    result = detail_face(pipe, image, get_analyzer().analyze(image), options["prompt"].format(subject=context.subject),
                         job.steps, job.guidance, job.seed, fam.resolution, options, extra)
    info: dict[str, Any] = {"detailer": result.reason}
    if result.applied:
        before = job.relpath.replace(".png", ".before.png")
        from ..images import encode_png

        atomic_write_bytes(out / before, encode_png(image))  # the plain render, before the detailer: scored
        info.update(before_path=before, detailer_box=list(result.box), detailer_settings=options)
    return result.image, info
