"""Precision, memory tiers and the real-size families: what can be checked on a CPU."""

from __future__ import annotations

import pytest

from workbench.errors import ConfigError
from workbench.likeness import train_likeness
from workbench.likeness.config import TrainConfig
from workbench.likeness.memory import GB, plan_memory
from workbench.models import get_family

SET = "aws_rek_subject1"


def test_bf16_training_probes_on_every_arch_then_fp32_in_the_same_process(settings, analyzer, faces_dir, tmp_path):
    """The checkpoint probe once crashed under mixed precision (fp32 latents into a bf16 VAE), and a
    second training with another precision was refused by accelerate's process-wide state."""
    for family in ("tiny-sd", "tiny-sdxl", "tiny-flux"):
        likeness = train_likeness(faces_dir / SET, tmp_path / family, family=family, settings=settings,
                                  analyzer=analyzer, progress=False, steps=2, precision="bf16")
        assert likeness.card["config"]["precision"] == "bf16"
        assert [row["step"] for row in likeness.card["curve"]] == [1, 2]  # probed twice, in bf16
    again = train_likeness(faces_dir / SET, tmp_path / "fp32", family="tiny-sd", settings=settings,
                           analyzer=analyzer, progress=False, steps=1)
    assert again.card["config"]["precision"] == "fp32"


def test_the_balanced_tier_slices_the_vae(settings, analyzer, faces_dir, tmp_path, monkeypatch):
    """The memory tier's VAE setting reaches the pipeline: cached latents and probe images go through the
    VAE one image at a time (within one level of 255 of the batched decode: test_training), and the card
    records it."""
    from workbench.likeness import probe

    sliced, render = [], probe.render_probes
    monkeypatch.setattr(probe, "render_probes", lambda pipe, *a: (sliced.append(pipe.vae.use_slicing),
                                                                  render(pipe, *a))[1])
    likeness = train_likeness(faces_dir / SET, tmp_path / "lk", family="tiny-sd", settings=settings,
                              analyzer=analyzer, progress=False, steps=1, memory="balanced")
    config = likeness.card["config"]
    assert (config["memory"], config["vae"], config["gradient_checkpointing"]) == ("balanced", "sliced", True)
    assert sliced == [True]
    assert TrainConfig(memory="full").resolve(get_family("sdxl"), 5, "cpu").vae == "batched"
    assert TrainConfig(vae="tiled").resolve(get_family("sdxl"), 5, "cpu").vae == "tiled"  # an explicit choice wins


def test_precision_is_one_setting_and_the_old_name_still_reads():
    fam = get_family("tiny-sd")
    assert TrainConfig(mixed_precision="no").resolve(fam, 8, "cpu").precision == "fp32"
    assert TrainConfig(mixed_precision="bf16").precision == "bf16"
    assert TrainConfig().resolve(get_family("sdxl"), 8, "cuda", free_memory=80 * GB).precision == "fp16"
    assert TrainConfig().resolve(get_family("flux"), 8, "cuda", free_memory=80 * GB).precision == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        TrainConfig(precision="fp16").resolve(fam, 8, "cpu")


def test_steps_count_optimizer_updates_over_the_same_samples():
    """80 samples per photo (clamped 400-1200) whatever the batch; --steps is optimizer updates."""
    fam = get_family("sdxl")
    one = TrainConfig(batch_size=1).resolve(fam, 10, "cpu")
    four = TrainConfig(batch_size=4).resolve(fam, 10, "cpu")
    accumulated = TrainConfig(batch_size=2, gradient_accumulation=2).resolve(fam, 10, "cpu")
    assert (one.steps, four.steps, accumulated.steps) == (800, 200, 200)
    assert TrainConfig(steps=7, batch_size=4).resolve(fam, 10, "cpu").steps == 7


@pytest.mark.parametrize(("family", "free_gb", "tier", "batch"), [
    ("sdxl", 80, "full", 4), ("sdxl", 24, "full", 2), ("sdxl", 12, "balanced", 4), ("flux", 80, "full", 1),
    ("flux", 40, "balanced", 4), ("flux", 24, "low", 4), ("flux", 16, "low", 2), ("sd15", 8, "full", 4),
])
def test_memory_tier_follows_free_memory(family, free_gb, tier, batch):
    fam = get_family(family)
    plan = plan_memory(fam, fam.resolution, "bf16" if fam.arch == "flux" else "fp16", "cuda", free_gb * GB)
    assert (plan.tier, plan.batch_size) == (tier, batch)
    assert plan.gradient_checkpointing == (tier != "full")
    assert plan.optimizer == ("adamw8bit" if tier == "low" else "adamw")
    assert plan.quantize_base == ("nf4" if tier == "low" and fam.arch == "flux" else None)
    assert plan.vae == {"full": "batched", "balanced": "sliced", "low": "tiled"}[tier]
    assert plan.estimate_gb <= 0.9 * free_gb


def test_a_given_batch_or_tier_is_kept():
    sdxl = get_family("sdxl")
    assert (plan_memory(sdxl, 1024, "fp16", "cuda", 24 * GB, batch_size=4).tier,
            plan_memory(sdxl, 1024, "fp16", "cuda", 24 * GB, tier="balanced").batch_size) == ("balanced", 4)
    assert plan_memory(sdxl, 1024, "fp16", "cuda", 80 * GB, tier="full", batch_size=1).batch_size == 1


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd15", "sdxl", "flux"])
def test_the_tier_table_is_the_trace(family):
    """memory.py's numbers are what footprint.py traces for the trainer's own step (native resolution and,
    for SD1.5's quick trace, half of it; FLUX's fixed part is its text tokens)."""
    from workbench.likeness.footprint import step_footprint
    from workbench.models.architectures import get_architecture

    fam = get_family(family)
    profile = get_architecture(fam.arch).memory
    precision = "bf16" if fam.arch == "flux" else "fp16"
    sizes = (profile.native // 2, profile.native) if fam.arch == "sd" else (profile.native,)
    for checkpointed in (False, True):
        fixed, per_pixel = profile.activations[checkpointed]
        for size in sizes:
            traced = step_footprint(fam, size, 1, precision, checkpointed, rank=8)
            table = fixed + per_pixel * (size / profile.native) ** 2
            assert traced.activations_gb == pytest.approx(table, rel=0.03, abs=0.02), (size, checkpointed)
    assert traced.lora_parameters == profile.lora_params_per_rank * 8
    assert traced.base_gb * GB == pytest.approx(profile.resident_params * 2, rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_trained_text_encoder_is_in_the_table_as_traced(family):
    """--train-text-encoder keeps the CLIP encoders on the GPU with a LoRA, encoding captions every step."""
    from workbench.likeness.footprint import step_footprint
    from workbench.likeness.memory import StepExtras, peak_gb
    from workbench.models.architectures import get_architecture

    fam = get_family(family)
    profile = get_architecture(fam.arch).memory
    size = profile.native
    for checkpointed in (False, True):
        traced = step_footprint(fam, size, 1, "fp16", checkpointed, rank=4, train_text_encoder=True)
        table = sum(profile.activations[checkpointed]) + profile.text_encoder_activations[checkpointed]
        assert traced.activations_gb == pytest.approx(table, rel=0.03, abs=0.02), checkpointed
    assert traced.lora_parameters == (profile.lora_params_per_rank + profile.text_encoder_lora_per_rank) * 4
    assert traced.base_gb * GB == pytest.approx((profile.resident_params + profile.text_encoder_params) * 2,
                                                rel=1e-3)
    with_encoders = peak_gb(fam, size, "fp16", 1, True, rank=4, extras=StepExtras(text_encoders=True))
    assert with_encoders == pytest.approx(traced.total_gb + 1.0, rel=0.03)  # + the planner's slack
    assert plan_memory(fam, size, "fp16", "cuda", 80 * GB, extras=StepExtras(text_encoders=True)).estimate_gb > \
        plan_memory(fam, size, "fp16", "cuda", 80 * GB).estimate_gb


@pytest.mark.slow
def test_prior_preservation_counts_the_class_batch_as_traced():
    """The class batch's loss joins the step's before the one backward: both graphs are alive at once. The
    table counts twice the batch, which the trace stays just under."""
    from workbench.likeness.footprint import step_footprint
    from workbench.likeness.memory import SLACK_GB, StepExtras, peak_gb

    fam, prior = get_family("sd15"), StepExtras(prior_preservation=True)
    for checkpointed in (False, True):
        traced = step_footprint(fam, 512, 2, "fp16", checkpointed, prior_preservation=True)
        alone = step_footprint(fam, 512, 2, "fp16", checkpointed)
        assert traced.activations_gb > 1.5 * alone.activations_gb
        table = peak_gb(fam, 512, "fp16", 2, checkpointed, extras=prior) - SLACK_GB
        assert traced.total_gb <= table <= 1.3 * traced.total_gb, checkpointed


@pytest.mark.slow
@pytest.mark.parametrize(("family", "size", "measured_gb"), [("sd15", 512, 6.24), ("sdxl", 1024, 34.41)])
def test_the_trace_reproduces_the_peaks_measured_on_the_h100(family, size, measured_gb):
    """Known answers: torch.cuda.max_memory_allocated of train_likeness() at batch 4, fp16, tier full, on
    an H100 (benchmarks/results/h100-2026-11-26: chain.json, speed.json), for the step as it was then (LoRA
    inputs cast up to fp32). Today's step, traced, scaled by that measured/traced ratio, is what the card
    would show: the estimate the planner acts on must not be below it."""
    from workbench.likeness.footprint import step_footprint
    from workbench.likeness.memory import estimate_gb

    fam = get_family(family)
    then = step_footprint(fam, size, 4, "fp16", uncast_lora_inputs=False).total_gb
    assert then == pytest.approx(measured_gb, rel=0.03)
    now = step_footprint(fam, size, 4, "fp16").total_gb
    assert now < then  # the half-precision LoRA inputs keep no fp32 copies
    assert now * measured_gb / then <= estimate_gb(fam, size, "fp16", "full", 4) <= 1.2 * measured_gb


def test_the_trace_counts_what_autocast_and_fused_attention_keep():
    """Known answers in bytes. Attention keeps its output and log-sum-exp, not the 8 x 4096^2 matrix
    (256 MiB) of the math path; a linear under autocast copies its fp32 weight to fp16; a layer norm runs
    in fp32 (a copy of its input, its output, per-row mean and rstd)."""
    import torch

    from workbench.likeness.footprint import LiveTensors, gpu_kernels_on_meta

    functional = torch.nn.functional
    original = functional.linear
    mib = 2**20
    q = torch.zeros(1, 8, 4096, 64, dtype=torch.float16, device="meta")
    with gpu_kernels_on_meta(torch.float16), LiveTensors([q]) as live:
        out = functional.scaled_dot_product_attention(q, q, q)
    assert (live.peak, out.dtype) == (4 * mib + 8 * 4096 * 4, torch.float16)

    x = torch.zeros(256, 1024, dtype=torch.float16, device="meta", requires_grad=True)  # a layer deep inside
    w = torch.zeros(1024, 1024, dtype=torch.float32, device="meta", requires_grad=True)
    with gpu_kernels_on_meta(torch.float16), LiveTensors([x, w]) as live:
        y = functional.linear(x, w)
        after_linear = live.live
        z = functional.layer_norm(y, (1024,))
    assert after_linear == 2 * mib + mib // 2  # the fp16 weight copy (kept for x's gradient) + output
    assert live.live == after_linear + mib + mib + 2 * 256 * 4  # fp32 input copy, fp32 output, mean, rstd
    assert (y.dtype, z.dtype, functional.linear) == (torch.float16, torch.float32, original)


def test_memory_tier_refuses_what_cannot_fit_and_cpu_stays_simple():
    with pytest.raises(ConfigError, match="low-memory tier"):
        plan_memory(get_family("flux"), 1024, "bf16", "cuda", 6 * GB)
    cpu = plan_memory(get_family("tiny-sd"), 64, "fp32", "cpu")
    assert (cpu.tier, cpu.batch_size, cpu.gradient_checkpointing, cpu.estimate_gb) == ("full", 1, False, None)


def test_a_quantized_base_needs_weights_on_disk(settings):
    from workbench.models import load_pipeline

    with pytest.raises(ConfigError, match="weights on disk"):
        load_pipeline("random-flux-small", settings=settings, quantize="nf4")


@pytest.mark.parametrize(("family", "expected"), [
    # parameter counts from the model cards / the hub's configs, in millions
    ("random-sd15", {"unet": 859.5, "vae": 83.7, "text_encoder": 123.1}),
    ("random-sdxl", {"unet": 2567.5, "vae": 83.7, "text_encoder": 123.1, "text_encoder_2": 694.7}),
    ("random-flux", {"transformer": 11901.4, "vae": 83.8, "text_encoder": 123.1, "text_encoder_2": 4762.3}),
])
def test_realsize_families_have_the_published_sizes(family, expected):
    from workbench.models.realsize import parameter_counts

    counts = {k: round(v / 1e6, 1) for k, v in parameter_counts(get_family(family)).items()}
    for name, millions in expected.items():
        assert counts[name] == pytest.approx(millions, rel=2e-3), name


def test_realsize_models_build_on_the_device_but_schedulers_stay_on_the_cpu():
    """On the GPU the scheduler's tables were once built on CUDA and the pipeline's numpy call failed."""
    from workbench.models.realsize import build_realsize_pipeline

    pipe = build_realsize_pipeline(get_family("random-sd15"), device="meta")
    assert pipe.unet.device.type == "meta" and pipe.scheduler.alphas_cumprod.device.type == "cpu"


def test_out_of_memory_advice_resumes_with_checkpointing_else_names_a_smaller_plan():
    from workbench.likeness.memory import out_of_memory_advice

    sdxl = get_family("sdxl")
    eager = TrainConfig(memory="full", batch_size=4).resolve(sdxl, 10, "cpu").model_copy(update={"precision": "fp16"})
    said = out_of_memory_advice(sdxl, eager, "at step 7", 5)
    assert "estimated peak 33.6 GB" in said and "--memory balanced --batch-size 4" in said
    assert "resumes from step 5" in said
    checkpointed = eager.model_copy(update={"memory": "balanced", "gradient_checkpointing": True})
    said = out_of_memory_advice(sdxl, checkpointed, "at step 7", 5)
    assert "new --out with --memory balanced --batch-size 2" in said and "resumes" not in said


def test_memory_table_and_command_show_what_a_card_trains():
    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.likeness.memory import memory_table

    table = memory_table(get_family("flux"), free_gb=24)
    assert table[table["auto"]][["tier", "batch_size", "base"]].values.tolist() == [["low", 4, "nf4"]]
    assert table["fits"].tolist() == [False] * 6 + [True] * 3  # only the NF4 tier fits 24 GB at 1024 px
    plan = plan_memory(get_family("flux"), 1024, "bf16", "cuda", 24 * GB)
    assert table[table["auto"]]["estimate_gb"].item() == plan.estimate_gb
    with pytest.raises(ConfigError, match="precision 'fp64': expected one of fp32, bf16, fp16"):
        memory_table(get_family("sdxl"), precision="fp64")
    for reduced in ("tiny-sd", "random-flux-small"):
        with pytest.raises(ConfigError, match="reduced test family"):
            memory_table(get_family(reduced))
    result = CliRunner().invoke(app, ["memory", "--family", "sdxl", "--gpu-gb", "24"])
    assert result.exit_code == 0, result.output
    picked = [line.split() for line in result.output.splitlines() if line.endswith("<- auto")]
    assert picked == [["full", "2", "False", "adamw", "fp16", "19.9", "True", "<-", "auto"]]


def test_the_memory_trace_puts_torch_back_even_when_it_fails():
    """The trace swaps torch.nn.functional's functions for the length of one trace, one trace at a time."""
    import torch

    from workbench.likeness.footprint import gpu_kernels_on_meta

    before = {name: getattr(torch.nn.functional, name) for name in ("linear", "layer_norm",
                                                                     "scaled_dot_product_attention")}
    with pytest.raises(RuntimeError, match="inside"), gpu_kernels_on_meta(torch.bfloat16):
        assert torch.nn.functional.linear is not before["linear"]
        raise RuntimeError("inside the trace")
    assert {name: getattr(torch.nn.functional, name) for name in before} == before
