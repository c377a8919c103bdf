"""Speed of the workbench's trainer and runner against plain diffusers, measured in one process on
real-size random-weight models (no download), in the same dtype.

Sections (each writes its rows to the JSON as soon as it ends, so a timeout keeps what was measured):
  pack      SDXL pack of N images at 1024^2, 30 steps, CFG, LoRA r16. Plain: one image per pipeline call
            with the LoRA loaded unfused (what a diffusers user writes). Workbench: ``generate()`` (fused
            LoRA, batched), model load excluded. Plus the pixel difference of one image rendered both ways.
  train     SDXL LoRA r16 at 1024^2. Plain: diffusers' DreamBooth-LoRA loop (``--plain-train``; the first arm,
            batch 1 with a VAE encode every step and fp32 VAE, is the ratio's baseline; ``4:1`` adds batch 4 on
            cached latents, the trainer's own batch, to tell the trainer's overhead from the batch's).
            Workbench: ``train_likeness`` per ``--train-variants`` arm (batch, regional compile, gradient
            checkpointing, and ``peft`` for peft's own LoRA forward: the A/B of the trainer's lean one). All
            arms at the trainer's precision. Per sample, projected to 1000 samples; for the trainer also a whole
            default likeness (model load excluded): the call's time outside the loop + 1000 samples of steps +
            4 checkpoints with the default probes, as measured.
            ``--train-profile``: GPU kernel time against wall time per step, host syncs, kernel launches and
            the top ops, for plain b>1 and the first trainer arm.
  flux      FLUX.1 transformer step at 1024^2 (4096 image + 512 text tokens), eager vs regional compile,
            and the opt-in fp8 path (row-wise float8 linears, compiled) with its difference from eager bf16.

GPU: ``python benchmarks/gpu_speed.py --json OUT`` (called by gpu.sh; gpu_followup.sh runs the training
diagnosis ``--sections train --plain-train 1:0,4:1 --train-variants 4:0,8:1:0 --train-profile``).
CPU smoke run (tiny models, seconds): ``python benchmarks/gpu_speed.py --device cpu --quick``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SELFIES = ROOT / "datasets" / "sample-selfies" / "aws_rek_subject1"
ROWS: list[dict] = []


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 1) -> float:
    sync(device)
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - started) / repeat


def peak_gb(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 1024**3, 2) if device.startswith("cuda") else None


def fresh(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def flops_of(fn) -> float:
    """FLOPs of one call, counted by PyTorch's FlopCounterMode (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def record(args, **row) -> None:
    ROWS.append(row)
    print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": device_name(args.device), "rows": ROWS}, indent=1))


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"


def random_lora(pipe, rank: int, folder: Path) -> Path:
    """A random r``rank`` LoRA on the family's targets, saved like a likeness's (non-zero B: it changes pixels)."""
    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from workbench.models import get_family

    unet = pipe.unet
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=list(get_family("sdxl").lora_targets)), adapter_name="bench")
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1e-3)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name="bench"))
    type(pipe).save_lora_weights(folder, unet_lora_layers=state, weight_name="lora.safetensors")
    unet.delete_adapters("bench")
    return folder


def pack_of(n_prompts: int):
    from workbench.packs.schema import Pack, PackPrompt

    looks = ["navy suit", "grey blazer", "white shirt", "black turtleneck", "denim jacket", "linen shirt",
             "knit sweater", "leather jacket", "trench coat", "polo shirt", "cardigan", "tweed jacket"]
    prompts = [PackPrompt(id=f"look-{i:02d}", prompt=f"corporate headshot photo of {{subject}}, "
                          f"{looks[i % len(looks)]}, studio light, sharp focus") for i in range(n_prompts)]
    return Pack(name="bench-headshots", description="benchmark pack", negative_prompt="blurry, lowres",
                prompts=prompts)


def bench_pack(args, settings) -> None:
    import numpy as np
    import torch

    from workbench.generate import generate
    from workbench.likeness import Likeness
    from workbench.models import get_family, load_pipeline
    from workbench.store import read_manifest

    fam = get_family(args.sdxl)
    size, steps, seeds = args.size or fam.resolution, args.pack_steps, list(range(args.seeds))
    pack = pack_of(args.images // len(seeds))
    n_images = len(pack.prompts) * len(seeds)
    work = Path(tempfile.mkdtemp(prefix="bench-pack-"))
    fresh(args.device)
    pipe, _ = load_pipeline(fam, settings=settings)
    lora_dir = random_lora(pipe, 16, work / "likeness")
    pipe.load_lora_weights(lora_dir, weight_name="lora.safetensors", adapter_name="likeness")
    subject = "ohwx person"
    prompt = pack.prompts[0].prompt.format(subject=subject)

    def one(seed: int, n_steps: int = steps):
        return pipe(prompt=prompt, negative_prompt=pack.negative_prompt, num_inference_steps=n_steps,
                    guidance_scale=fam.guidance, height=size, width=size,
                    generator=torch.Generator("cpu").manual_seed(seed)).images[0]

    one(0, 2)  # warm-up: kernel selection, allocator
    plain_n = max(1, min(args.plain_images, n_images))
    plain_s = timed(lambda: [one(s) for s in range(plain_n)], args.device) / plain_n
    reference = np.asarray(one(0), dtype=np.float32)
    # FLOPs of one denoising step (UNet, batch 2 = CFG) for TFLOP/s
    unet_config, dtype = pipe.unet.config, pipe.unet.dtype
    pooled_dim = unet_config.projection_class_embeddings_input_dim - 6 * unet_config.addition_time_embed_dim
    unet_in = (torch.randn(2, 4, size // 8, size // 8, device=pipe.device, dtype=dtype),
               torch.tensor([500, 500], device=pipe.device),
               torch.randn(2, 77, unet_config.cross_attention_dim, device=pipe.device, dtype=dtype))
    cond = {"text_embeds": torch.randn(2, pooled_dim, device=pipe.device, dtype=dtype),
            "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2, device=pipe.device, dtype=dtype)}
    with torch.no_grad():
        step_flops = flops_of(lambda: pipe.unet(*unet_in, added_cond_kwargs=cond))
        step_s = timed(lambda: pipe.unet(*unet_in, added_cond_kwargs=cond), args.device, repeat=5)
    record(args, section="pack", arm="plain diffusers", images=plain_n, seconds_per_image=round(plain_s, 3),
           projected_pack_seconds=round(plain_s * n_images, 1), ms_per_step_cfg=round(step_s * 1e3, 1),
           tflops=round(step_flops / step_s / 1e12, 1), peak_gb=peak_gb(args.device), size=size, steps=steps)
    pipe = None  # free the plain arm's pipeline before the workbench loads its own
    fresh(args.device)
    card = {"family": fam.name, "base": None, "token": "ohwx", "class_word": "person", "model": {}}
    likeness = Likeness(lora_dir, card)
    (lora_dir / "likeness.json").write_text(json.dumps(card))
    for variant in args.variants.split(","):
        batch, compiled, *rest = (int(v) for v in variant.split(":"))
        fp8 = bool(rest and rest[0])
        from workbench.errors import ConfigError
        from workbench.generate import load_renderer

        fresh(args.device)
        started = time.perf_counter()
        try:
            renderer = load_renderer(likeness, fam, None, settings, compile=bool(compiled), fp8=fp8)
        except ConfigError as error:  # fp8 on a card without float8 matmuls
            record(args, section="pack", arm=f"workbench generate() b{batch} {variant}", skipped=str(error))
            continue
        load = time.perf_counter() - started
        passes = [("first pass (compiles)", pack)] if compiled else []
        passes.append(("steady", pack))
        for label, which in passes:
            folder = work / f"run-b{batch}-c{compiled}-f{int(fp8)}-{label.split()[0]}"
            started = time.perf_counter()
            run = generate(likeness, [which], folder, steps=[steps], seeds=seeds, size=size, batch_size=batch,
                           settings=settings, progress=False, renderer=renderer)
            seconds = time.perf_counter() - started
            ours = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(run.path / run.table.iloc[0]["path"])
                              .convert("RGB"), dtype=np.float32)
            diff = np.abs(ours - reference)
            record(args, section="pack", arm=f"workbench generate() b{batch}" + (" compiled" if compiled else "")
                   + (" fp8" if fp8 else "") + (f", {label}" if compiled else ""), images=len(run.table), batch=batch,
                   pack_seconds=round(seconds, 1), load_seconds=round(load, 1),
                   compile_seconds=round(read_manifest(run.path).timings.get("compile_seconds", 0.0), 1),
                   seconds_per_image=round(seconds / len(run.table), 3),
                   ratio_vs_plain=round(plain_s / (seconds / len(run.table)), 2), peak_gb=peak_gb(args.device),
                   same_image_max_abs_diff=float(diff.max()), same_image_mean_abs_diff=round(float(diff.mean()), 3))
        renderer = None


def bench_train(args, settings) -> None:
    """Plain arms first (``--plain-train``), then the workbench's trainer once per ``--train-variants`` arm,
    all at the trainer's precision. ``--train-profile`` adds, for plain b4 and the first trainer arm, where a
    step's time goes: GPU kernel time against wall time per step (how idle the GPU is), host syncs, top ops."""
    from workbench.likeness import train_likeness
    from workbench.likeness.config import TrainConfig
    from workbench.models import get_family

    fam = get_family(args.sdxl)
    size = args.size or fam.resolution
    precision = args.train_precision or TrainConfig(family=fam.name).resolve(fam, 7, args.device).precision
    plain_s = None
    for arm in args.plain_train.split(","):
        batch, cached = (int(v) for v in arm.split(":"))
        seconds = plain_train_arm(args, settings, fam, size, precision, batch, bool(cached))
        plain_s = plain_s or seconds  # the first plain arm (b1, VAE every step) is the ratio's baseline
    for n, variant in enumerate(args.train_variants.split(",")):
        batch, compiled, *rest = variant.split(":")
        checkpointing = bool(int(rest[0])) if rest else None
        peft_forward = rest[1:] == ["peft"]  # the A/B of workbench.likeness.lean_lora
        fresh(args.device)
        work = Path(tempfile.mkdtemp(prefix="bench-train-"))
        # The profiled steps come after the timed ones and are a minority of all steps, so the median step
        # time the trainer reports is an unprofiled one (profiling slows a step by about a third: on the
        # 2026-11-27 H100 run, profiled steps inside the timed window put 0.889 s/step where 0.595 was due).
        profile = (StepProfile(args.device, f"workbench {variant}", warm=args.train_steps + 2)
                   if args.train_profile and n == 0 else None)
        steps = args.train_steps + 2 + (profile.steps + 1 if profile else 0)
        started = time.perf_counter()
        likeness = train_likeness(SELFIES, work / "lk", family=fam.name, settings=settings, progress=False,
                                  steps=steps, checkpoint_every=steps, resolution=size, precision=precision,
                                  batch_size=None if batch == "auto" else int(batch),
                                  compile=bool(int(compiled)), gradient_checkpointing=checkpointing,
                                  ignore_gate=True, analyzer=args.analyzer, lean_lora=not peft_forward,
                                  callback=profile.callback if profile else None)
        total = time.perf_counter() - started
        timings = json.loads((work / "lk" / "manifest.json").read_text())["timings"]
        config = likeness.card["config"]
        per_step = timings["seconds_per_step"]
        per_sample = per_step / config["batch_size"]
        # A default likeness of 1000 samples: what this call spent outside the loop (check, caches, LoRA
        # set-up, the finish; model load excluded) + 1000 samples of steps + its 4 checkpoints, each
        # rendering the default probe set as measured here (probes run eager, compiled arm or not).
        per_checkpoint = timings["checkpoint_seconds"] / timings["checkpoints"]
        projected = (timings["likeness_seconds"] - timings["train_seconds"] + per_sample * 1000
                     + DEFAULT_CHECKPOINTS * per_checkpoint)
        record(args, section="train", arm=f"workbench train_likeness() {variant}", size=size,
               seconds_per_step=round(per_step, 3), samples_per_step=config["batch_size"],
               seconds_per_sample=round(per_sample, 3), projected_1000_samples_seconds=round(per_sample * 1000, 1),
               projected_likeness_seconds=round(projected, 1), checkpoint_seconds=round(per_checkpoint, 1),
               ratio_vs_plain=round(plain_s / per_sample, 2) if plain_s else None, memory_tier=config["memory"],
               gradient_checkpointing=config["gradient_checkpointing"], compiled=config["compile"],
               compile_seconds=round(timings.get("compile_seconds", 0.0), 1), precision=config["precision"],
               whole_call_seconds=round(total, 1), peak_gb=peak_gb(args.device),
               **(profile.summary() if profile else {}))
        shutil.rmtree(work, ignore_errors=True)


def plain_train_arm(args, settings, fam, size: int, precision: str, batch: int, cached: bool) -> float:
    """diffusers' train_dreambooth_lora_sdxl.py step, written out: fp32 VAE (encoding every step unless
    ``cached``), autocast at ``precision`` with a gradient scaler for fp16, fp32 LoRA r16, AdamW, clip 1.0.
    Returns seconds per sample."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from peft import LoraConfig

    from workbench.images import load_image
    from workbench.models import load_pipeline

    fresh(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    pipe, _ = load_pipeline(fam, settings=settings, dtype=str(dtype).removeprefix("torch."))
    unet, vae = pipe.unet, pipe.vae
    vae.to(torch.float32)  # diffusers' SDXL scripts keep the VAE in fp32
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian",
                                target_modules=list(fam.lora_targets)))
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=args.device.startswith("cuda") or None)
    photos = sorted(SELFIES.glob("*.jpg"))
    pixels = torch.cat([torch.from_numpy(np.asarray(load_image(p).convert("RGB").resize((size, size)),
                                                    dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
                        for p in photos])
    with torch.no_grad():
        embeds, _, pooled, _ = pipe.encode_prompt(["photo of ohwx person"], device=pipe.device,
                                                  num_images_per_prompt=batch, do_classifier_free_guidance=False)
        latents_cache = None
        if cached:
            latents_cache = torch.cat([vae.encode(pixels[i:i + 1].to(pipe.device)).latent_dist.sample()
                                       for i in range(len(pixels))]) * vae.config.scaling_factor
            latents_cache = latents_cache.to(dtype)
    time_ids = torch.tensor([[size, size, 0, 0, size, size]] * batch, device=pipe.device, dtype=embeds.dtype)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16 and args.device.startswith("cuda"))
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    def step(i: int):
        index = [(i * batch + j) % len(pixels) for j in range(batch)]
        with torch.no_grad():
            if cached:
                latents = latents_cache[index]
            else:
                latents = vae.encode(pixels[index].to(pipe.device)).latent_dist.sample()
                latents = (latents * vae.config.scaling_factor).to(dtype)
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (batch,), device=pipe.device)
        noisy = noise_scheduler.add_noise(latents, noise, t)
        with torch.autocast(pipe.device.type, dtype=dtype, enabled=dtype != torch.float32):
            pred = unet(noisy, t, embeds, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
            loss = F.mse_loss(pred.float(), noise.float())
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for i in range(2):
        step(i)
    seconds = timed(lambda: [step(i) for i in range(args.train_steps)], args.device) / args.train_steps
    label = f"plain diffusers loop b{batch}, " + ("cached latents" if cached else "VAE every step")
    extra = {}
    if args.train_profile and batch > 1:
        profile = StepProfile(args.device, label)
        for i in range(profile.warm + profile.steps):
            step(i)
            profile.callback(i + 1)
        extra = profile.summary()
    record(args, section="train", arm=label, size=size, precision=precision, seconds_per_step=round(seconds, 3),
           samples_per_step=batch, seconds_per_sample=round(seconds / batch, 3),
           projected_1000_samples_seconds=round(seconds / batch * 1000, 1), peak_gb=peak_gb(args.device), **extra)
    return seconds / batch


class StepProfile:
    """torch.profiler over ``steps`` optimizer steps after ``warm`` ones, driven by the trainer's callback
    (called after every step). Prints the top ops; ``summary()``: wall vs GPU-kernel time per step."""

    def __init__(self, device: str, label: str, warm: int = 2, steps: int = 3):
        self.device, self.label, self.warm, self.steps = device, label, warm, steps
        self.profiler, self.started, self.wall = None, 0.0, None

    def callback(self, done: int, total: int | None = None, **_) -> None:
        from torch.profiler import ProfilerActivity, profile

        if done == self.warm:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.startswith("cuda") else [])
            sync(self.device)
            self.profiler = profile(activities=activities)
            self.profiler.start()
            self.started = time.perf_counter()
        elif done == self.warm + self.steps and self.profiler is not None:
            sync(self.device)
            self.wall = (time.perf_counter() - self.started) / self.steps
            self.profiler.stop()
            cuda = self.device.startswith("cuda")
            print(f"== profile: {self.label}, {self.steps} steps ==")
            print(self.profiler.key_averages().table(
                sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=15))

    def summary(self) -> dict:
        """Per profiled step: wall time, leaf aten ops (each a kernel on a GPU: the host's work scales with
        them), and on a GPU the kernel time (wall minus kernel time is GPU idle: launch overhead, host
        syncs), host syncs and kernel launches. Profiled steps run a little slower than the timed ones."""
        if self.profiler is None or self.wall is None:
            return {}
        leaves = sum(1 for e in self.profiler.events() if e.name.startswith("aten::") and not e.cpu_children)
        row = {"profile_wall_ms_per_step": round(self.wall * 1e3, 1),
               "profile_leaf_ops_per_step": round(leaves / self.steps)}
        if not self.device.startswith("cuda"):
            return row
        events = self.profiler.key_averages()
        kernel_us = gpu_kernel_us(events)
        syncs = sum(e.count for e in events if e.key in SYNC_EVENTS)
        launches = sum(e.count for e in events if e.key in LAUNCH_EVENTS)
        return {**row, "profile_gpu_kernel_ms_per_step": round(kernel_us / 1e3 / self.steps, 1),
                "profile_host_syncs_per_step": round(syncs / self.steps, 1),
                "profile_kernel_launches_per_step": round(launches / self.steps)}


def gpu_kernel_us(events) -> float:
    """GPU time in ``key_averages()``: the kernels' own rows only. An aten op's row carries its kernels'
    time too, so summing every row counts it twice (the 2026-11-27 H100 rows said 526 ms where the
    profiler's own total was 262 ms); this is the sum torch's table prints as "Self CUDA time total"."""
    from torch.autograd import DeviceType

    return float(sum(e.self_device_time_total or 0 for e in events
                     if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False)))


DEFAULT_CHECKPOINTS = 4  # TrainConfig: checkpoint_every = steps // 4
LAUNCH_EVENTS = {"cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"}
# The host waits for the GPU: an .item()/float() or a pageable copy ends in a stream synchronize.
SYNC_EVENTS = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy"}


def bench_flux(args, settings) -> None:
    import torch

    from workbench.models import get_family, load_pipeline
    from workbench.models.regional import compile_denoiser

    fam = get_family(args.flux)
    size = args.size or fam.resolution
    fresh(args.device)
    pipe, _ = load_pipeline(fam, settings=settings, dtype="bfloat16" if args.device.startswith("cuda") else None)
    transformer = pipe.transformer
    dtype, device = transformer.dtype, pipe.device
    tokens, text = (size // 16) ** 2, fam.text_length
    inputs = dict(hidden_states=torch.randn(1, tokens, transformer.config.in_channels, device=device, dtype=dtype),
                  encoder_hidden_states=torch.randn(1, text, transformer.config.joint_attention_dim, device=device,
                                                    dtype=dtype),
                  pooled_projections=torch.randn(1, transformer.config.pooled_projection_dim, device=device,
                                                 dtype=dtype),
                  timestep=torch.tensor([0.5], device=device, dtype=dtype),
                  guidance=torch.tensor([3.5], device=device, dtype=dtype),
                  txt_ids=torch.zeros(text, 3, device=device, dtype=dtype),
                  img_ids=pipe._prepare_latent_image_ids(1, size // 16, size // 16, device, dtype), return_dict=False)
    with torch.no_grad():
        transformer(**inputs)
        flops = flops_of(lambda: transformer(**inputs))
        eager = timed(lambda: transformer(**inputs), args.device, repeat=args.flux_repeat)
        eager_out = transformer(**inputs)[0].float()
        record(args, section="flux", arm="plain diffusers (eager)", size=size, ms_per_step=round(eager * 1e3, 1),
               tflops=round(flops / eager / 1e12, 1), peak_gb=peak_gb(args.device))
        started = time.perf_counter()
        compile_denoiser(transformer)
        transformer(**inputs)
        transformer(**inputs)
        sync(args.device)
        compile_s = time.perf_counter() - started
        compiled = timed(lambda: transformer(**inputs), args.device, repeat=args.flux_repeat)
        diff = (transformer(**inputs)[0].float() - eager_out).abs().max().item()
    record(args, section="flux", arm="workbench (regional compile)", size=size, ms_per_step=round(compiled * 1e3, 1),
           tflops=round(flops / compiled / 1e12, 1), compile_seconds=round(compile_s, 1),
           ratio_vs_plain=round(eager / compiled, 2), max_abs_diff_vs_eager=diff, peak_gb=peak_gb(args.device))
    bench_flux_fp8(args, pipe, inputs, eager, eager_out, flops, size)


def bench_flux_fp8(args, pipe, inputs, eager: float, eager_out, flops: float, size: int) -> None:
    """The opt-in fp8 path (``--fp8``: the blocks' linears float8 row-wise, regionally compiled) against
    the same eager bf16 step, with its difference from it."""
    import torch

    from workbench.errors import ConfigError
    from workbench.models.fp8 import check_fp8_device, quantize_fp8

    try:
        check_fp8_device(args.device)
    except ConfigError as error:
        record(args, section="flux", arm="workbench fp8 (row-wise, regional compile)", size=size, skipped=str(error))
        return
    transformer = pipe.transformer
    with torch.no_grad():
        swapped = quantize_fp8(transformer)
        torch._dynamo.reset()  # the blocks' compiled graphs were traced with bf16 linears
        started = time.perf_counter()
        transformer(**inputs)
        transformer(**inputs)
        sync(args.device)
        compile_s = time.perf_counter() - started
        fp8 = timed(lambda: transformer(**inputs), args.device, repeat=args.flux_repeat)
        out = transformer(**inputs)[0].float()
    record(args, section="flux", arm="workbench fp8 (row-wise, regional compile)", size=size,
           ms_per_step=round(fp8 * 1e3, 1), tflops=round(flops / fp8 / 1e12, 1), compile_seconds=round(compile_s, 1),
           ratio_vs_plain=round(eager / fp8, 2), max_abs_diff_vs_eager=(out - eager_out).abs().max().item(),
           rel_l2_diff_vs_eager=((out - eager_out).norm() / eager_out.norm()).item(), fp8_linears=swapped,
           peak_gb=peak_gb(args.device))


def listed(item: str):
    """An argparse type: a comma-separated list whose every item matches ``item`` (refused at parse time,
    before a GPU lease is spent loading models)."""
    import re

    def check(value: str) -> str:
        bad = [part for part in value.split(",") if not re.fullmatch(item, part)]
        if bad:
            raise argparse.ArgumentTypeError(f"{', '.join(bad)} is not {item}")
        return value

    return check


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny families, small sizes (a CPU smoke run)")
    parser.add_argument("--sections", default="pack,train,flux", type=listed(r"pack|train|flux"))
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--plain-images", type=int, default=4)
    parser.add_argument("--pack-steps", type=int, default=30)
    parser.add_argument("--variants", default="8:0", type=listed(r"\d+:[01](:[01])?"),
                        help="workbench arms as batch:compile[:fp8], comma-separated (e.g. 8:0,16:0,8:1,8:1:1); a "
                        "compiled arm renders the pack twice: compile, then steady; an fp8 arm reports its image "
                        "difference from the plain arm's first image")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--plain-train", default="1:0", type=listed(r"\d+:[01]"),
                        help="plain training arms as batch:cached, comma-separated (1:0 = diffusers' script at "
                        "batch 1, VAE every step: the ratio's baseline; 4:1 = batch 4 on cached latents, the "
                        "trainer's own batch)")
    parser.add_argument("--train-variants", default="auto:0", type=listed(r"(auto|\d+):[01](:[01](:peft)?)?"),
                        help="trainer arms as batch:compile[:checkpointing[:peft]], comma-separated (batch auto = "
                        "from free memory; peft = peft's own LoRA forward instead of the trainer's lean one; e.g. "
                        "auto:0,4:1,8:1:1,4:0:0:peft)")
    parser.add_argument("--train-precision", default=None, choices=["fp16", "bf16", "fp32"],
                        help="every training arm's precision (default: the trainer's for the family)")
    parser.add_argument("--train-profile", action="store_true", help="profile plain b>1 and the first trainer arm")
    parser.add_argument("--flux-repeat", type=int, default=10)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--recognizer", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from workbench.config import Settings
    from workbench.faces import get_analyzer

    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    args.sdxl, args.flux = ("tiny-sdxl", "tiny-flux") if args.quick else ("random-sdxl", "random-flux")
    if args.quick:
        args.images, args.pack_steps, args.train_steps, args.flux_repeat = 8, 4, 3, 2
    args.analyzer = get_analyzer(args.recognizer)
    # bf16 weights for both arms: random weights overflow fp16 more easily than trained ones, and the
    # comparison needs the same dtype on both sides.
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="bench-")), device=args.device, offline=True,
                        dtype="bfloat16" if args.device.startswith("cuda") else None)
    failed = 0
    for section in args.sections.split(","):
        try:
            {"pack": bench_pack, "train": bench_train, "flux": bench_flux}[section](args, settings)
        except Exception as exc:
            traceback.print_exc()
            failed += 1
            record(args, section=section, error=f"{type(exc).__name__}: {exc}"[:500])
    print_table()
    return 1 if failed else 0


def print_table() -> None:
    keys = ["section", "arm", "seconds_per_image", "pack_seconds", "seconds_per_sample",
            "projected_1000_samples_seconds", "projected_likeness_seconds", "ms_per_step", "ms_per_step_cfg", "tflops",
            "peak_gb", "ratio_vs_plain", "rel_l2_diff_vs_eager", "skipped"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in ROWS:
        print("| " + " | ".join(str(row.get(k, row.get("error", "")) if k == "arm" else row.get(k, "")) for k in keys)
              + " |")


if __name__ == "__main__":
    sys.exit(main())
