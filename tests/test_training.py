"""Likeness training on tiny families: finite loss, a LoRA that loads and changes output, resume."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from workbench.likeness import Likeness, train_likeness
from workbench.likeness import train as train_module
from workbench.models import load_pipeline

SET = "aws_rek_subject1"


def _render(pipe, seed=0):
    return np.asarray(pipe("photo of ohwx person", num_inference_steps=2, height=64, width=64,
                           generator=torch.Generator().manual_seed(seed)).images[0], dtype=np.float32)


@pytest.mark.parametrize("family", ["tiny-sd", "tiny-sdxl", "tiny-flux"])
def test_train_load_and_change_output(family, settings, analyzer, faces_dir, tmp_path):
    likeness = train_likeness(faces_dir / SET, tmp_path / "lk", family=family, settings=settings, analyzer=analyzer,
                              progress=False, steps=4, checkpoint_every=2, learning_rate=5e-3)
    card = likeness.card
    assert [row["step"] for row in card["curve"]] == [2, 4]
    assert all(np.isfinite(row["loss"]) for row in card["curve"])
    assert card["chosen_step"] in (2, 4) and card["selection_reason"]
    splits = card["splits"]
    assert not set(splits["validation"]) & set(splits["train"]) and not set(splits["test"]) & set(splits["train"])
    assert likeness.lora_path.is_file() and not list(likeness.path.glob("*.jpg"))  # no copy of the selfies
    assert len(list((likeness.path / "validation").glob("*.png"))) == 2 * 4
    pipe, _ = load_pipeline(family, settings=settings)
    before = _render(pipe)
    pipe.load_lora_weights(likeness.path, weight_name="lora.safetensors", adapter_name="lk")
    after = _render(pipe)
    # every LoRA tensor in the file is loaded (FLUX attention layers were once silently dropped)
    from peft.utils import get_peft_model_state_dict

    denoiser = pipe.transformer if family == "tiny-flux" else pipe.unet
    assert len(get_peft_model_state_dict(denoiser, adapter_name="lk")) == len(load_file(likeness.lora_path))
    assert np.abs(before - after).max() > 0  # the adapter is real and applied
    kohya = likeness.path / "lora_kohya.safetensors"
    if family == "tiny-flux":
        assert not kohya.exists()  # FLUX: the diffusers file is what ComfyUI loads
    else:
        fresh, _ = load_pipeline(family, settings=settings)
        fresh.load_lora_weights(likeness.path, weight_name=kohya.name)
        assert np.array_equal(_render(fresh), after)  # the kohya export is the same LoRA


def test_finished_likeness_is_not_retrained(tiny_likeness, settings, analyzer, faces_dir, monkeypatch):
    monkeypatch.setattr(train_module, "load_pipeline", lambda *a, **k: pytest.fail("retrained"))
    again = train_likeness(faces_dir / SET, tiny_likeness.path, settings=settings, analyzer=analyzer, progress=False)
    assert again.card["chosen_step"] == tiny_likeness.card["chosen_step"]


@pytest.mark.parametrize("kill_at", [2, 4])
def test_killed_run_resumes_to_exactly_the_same_result(kill_at, settings, analyzer, faces_dir, tmp_path,
                                                       monkeypatch):
    """Killed after a checkpoint and resumed: the same tensors, bit for bit, and the same file bytes."""
    options = dict(family="tiny-sd", settings=settings, analyzer=analyzer, progress=False, steps=6,
                   checkpoint_every=2, learning_rate=1e-3)
    straight = train_likeness(faces_dir / SET, tmp_path / "straight", **options)
    real_save = _killed_after(monkeypatch, kill_at)
    with pytest.raises(KeyboardInterrupt):
        train_likeness(faces_dir / SET, tmp_path / "resumed", **options)
    assert not (tmp_path / "resumed" / "likeness.json").exists()
    from workbench.store import read_manifest

    assert read_manifest(tmp_path / "resumed").status == "cancelled"
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = train_likeness(faces_dir / SET, tmp_path / "resumed", **options)
    assert [r["step"] for r in resumed.card["curve"]] == [2, 4, 6]
    a, b = load_file(straight.lora_path), load_file(resumed.lora_path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight.lora_path.read_bytes() == resumed.lora_path.read_bytes()
    kohya = "lora_kohya.safetensors"
    assert (straight.path / kohya).read_bytes() == (resumed.path / kohya).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(("family", "checkpointing", "precision"),
                         [("tiny-sd", False, "fp32"), ("tiny-flux", True, "fp32"), ("tiny-flux", False, "bf16")])
def test_compiled_blocks_give_the_eager_loss_and_lora_gradients(family, checkpointing, precision, settings):
    """One training micro-step through the regionally compiled denoiser (LoRA inside the compiled blocks)
    gives eager's loss and LoRA gradients: a compiled graph that dropped the LoRA, or detached it,
    gives zero or different gradients. In bf16 the step is a GPU's: autocast, the LoRA layers' lean
    forward traced into the blocks' full graphs (a graph break there is an error)."""
    from workbench.likeness.config import TrainConfig
    from workbench.likeness.lean_lora import lean_lora
    from workbench.models import get_family
    from workbench.models.architectures import adapter_for
    from workbench.models.regional import compile_denoiser, is_compiled

    half = precision == "bf16"
    fam = get_family(family)
    pipe, _ = load_pipeline(fam, settings=settings, dtype="bfloat16" if half else None)
    adapter = adapter_for(fam.arch, pipe, fam.text_length)
    config = TrainConfig(family=family, gradient_checkpointing=checkpointing, precision=precision)
    config = config.resolve(fam, 5, "cpu")
    denoiser, _, params = train_module.add_lora(pipe, adapter, config, fam)
    for p in params:  # a trained-looking LoRA: B is zero at init, which would hide a missing LoRA path
        torch.nn.init.normal_(p, std=0.05)
    latents = torch.randn(2, *adapter.encode_images(torch.zeros(1, 3, 64, 64)).shape[1:],
                          generator=torch.Generator().manual_seed(1)).to(pipe.dtype)
    cond = adapter.encode_captions(["photo of ohwx person"] * 2)
    layers = train_module.lora_layers_of(denoiser)

    def grads():
        for p in params:
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
            loss = adapter.loss(denoiser, latents, cond, torch.Generator().manual_seed(2))
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in params]

    with lean_lora(layers if half else []):
        eager_loss, eager = grads()
        compile_denoiser(denoiser)
        assert is_compiled(denoiser)
        compiled_loss, compiled = grads()
    assert compiled_loss == pytest.approx(eager_loss, rel=1e-3 if half else 1e-5)
    scale = max(float(g.abs().max()) for g in eager)
    assert scale > 0
    for a, b in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2 if half else 1e-3, atol=(1e-2 if half else 1e-4) * scale)



KERNELS = ("aten::mm", "aten::addmm", "aten::mul", "aten::add", "aten::add_", "aten::copy_")


@pytest.mark.parametrize(("family", "checkpointing"), [("tiny-sdxl", False), ("tiny-flux", False), ("tiny-sdxl", True)])
def test_the_training_steps_lora_layers_are_peft_bit_for_bit_with_fewer_kernels(family, checkpointing, settings):
    """A bf16 base with its fp32 LoRA under bf16 autocast (what a GPU trains). Leaving the LoRA layers' input
    in bf16, then computing each layer without peft's per-call overhead (``lean_lora``, the trainer's step) gives
    bit for bit the loss and LoRA gradients of peft's default forward, with fewer kernels each time: no
    activation up-casts, no multiplication by a scaling of 1. Peft's forward is back after."""
    from collections import Counter
    from contextlib import nullcontext

    from torch.profiler import profile

    from workbench.likeness.config import TrainConfig
    from workbench.likeness.lean_lora import lean_lora
    from workbench.models import get_family
    from workbench.models.architectures import adapter_for

    fam = get_family(family)
    pipe, _ = load_pipeline(fam, settings=settings, dtype="bfloat16")
    adapter = adapter_for(fam.arch, pipe, fam.text_length)
    config = TrainConfig(family=family, precision="bf16", gradient_checkpointing=checkpointing).resolve(fam, 5, "cpu")
    denoiser, _, params = train_module.add_lora(pipe, adapter, config, fam)
    for p in params:  # B is zero at init, which would hide the LoRA path
        torch.nn.init.normal_(p, std=0.05)
    latents = torch.randn(2, *adapter.encode_images(torch.zeros(1, 3, 64, 64)).shape[1:],
                          generator=torch.Generator().manual_seed(1)).bfloat16()
    cond = adapter.encode_captions(["photo of ohwx person"] * 2)
    layers = train_module.lora_layers_of(denoiser)

    def step(mode: str):
        for p in params:
            p.grad = None
        with (lean_lora(layers) if mode == "lean" else nullcontext(len(layers))) as covered, profile() as prof, \
                torch.autocast("cpu", dtype=torch.bfloat16), \
                train_module.lora_inputs_uncast(layers if mode != "peft" else []):
            loss = adapter.loss(denoiser, latents, cond, torch.Generator().manual_seed(2))
            loss.backward()
        assert covered == len(layers)
        kernels = Counter({e.key: e.count for e in prof.key_averages() if e.key in KERNELS})
        return float(loss.detach()), [p.grad.clone() for p in params], kernels

    loss, grads, kernels = step("peft")
    assert max(float(g.abs().max()) for g in grads) > 0
    runs = {mode: step(mode) for mode in ("uncast", "lean")}
    assert layers and all(layer.cast_input_dtype_enabled and "forward" not in vars(layer) for layer in layers)
    for mode_loss, mode_grads, _ in runs.values():
        assert mode_loss == loss
        for a, b in zip(mode_grads, grads, strict=True):
            assert torch.equal(a, b)
    uncast, lean = runs["uncast"][2], runs["lean"][2]
    assert uncast["aten::copy_"] < kernels["aten::copy_"] - len(layers)  # an activation copy fewer per layer
    assert lean["aten::mul"] <= uncast["aten::mul"] - len(layers)  # scaling 1: peft multiplies by it each way
    assert lean.total() < uncast.total() < kernels.total()


def test_lean_lora_leaves_peft_its_own_forward_where_it_does_not_apply():
    """Outside autocast (an fp32 step, the probes), and for a layer with dropout, peft's forward runs: the
    same output and the same ops as without ``lean_lora``."""
    from peft import LoraConfig, inject_adapter_in_model

    from workbench.likeness.lean_lora import lean_lora

    def model(dropout: float):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
        net = inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, lora_dropout=dropout, target_modules=["0", "1"],
                                                 init_lora_weights=False), net)
        return net, train_module.lora_layers_of(net)

    x = torch.randn(3, 8)
    net, layers = model(0.0)
    plain = net(x)
    with lean_lora(layers) as covered:
        assert covered == 2
        assert torch.equal(net(x), plain)  # fp32, no autocast: peft's forward
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lean = net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(lean, net(x)) and lean.dtype == torch.bfloat16
    net, layers = model(0.1)
    with lean_lora(layers) as covered:
        assert covered == 0 and all("forward" not in vars(layer) for layer in layers)


@pytest.mark.slow
def test_train_with_compile(tiny_likeness, settings, analyzer, faces_dir, tmp_path, monkeypatch):
    """``compile=True`` reaches the trainer: the denoiser's blocks are compiled once with the LoRA in place,
    the run trains (the same losses as the eager fixture, which has the same options, up to float
    rounding), the probes run eager (no second compile for inference), the card records it and the compile
    cost is kept apart from the step time."""
    from torch._dynamo.utils import counters

    from workbench.models.regional import is_compiled
    from workbench.store import read_manifest

    compiled = []
    real = train_module.compile_denoiser
    monkeypatch.setattr(train_module, "compile_denoiser", lambda d: (real(d), compiled.append(d)))
    graphs = counters["stats"]["unique_graphs"]
    after_first_step = []  # the callback runs after each step, before that step's probe
    likeness = train_likeness(faces_dir / SET, tmp_path / "lk", family="tiny-sd", settings=settings,
                              analyzer=analyzer, progress=False, steps=6, compile=True,
                              callback=lambda done, *a, **k: after_first_step.append(counters["stats"]["unique_graphs"])
                              if done == 1 else None)
    assert len(compiled) == 1 and is_compiled(compiled[0]) and after_first_step[0] > graphs
    assert counters["stats"]["unique_graphs"] == after_first_step[0]  # the probes compiled nothing more
    assert likeness.card["config"]["compile"] is True
    timings = read_manifest(likeness.path).timings
    assert timings["compile_seconds"] == pytest.approx(timings["first_step_seconds"] - timings["seconds_per_step"])
    losses = [r["loss"] for r in likeness.card["curve"]]
    assert losses == pytest.approx([r["loss"] for r in tiny_likeness.card["curve"]], abs=1e-5)
    assert any(float(t.abs().max()) > 0 for k, t in load_file(likeness.lora_path).items() if "lora_B" in k
               or ".up." in k)  # the LoRA trained (B starts at zero)


def test_attention_choice_selects_the_sdpa_kernel():
    """``math`` runs PyTorch's reference kernel, ``no-cudnn`` any kernel but cuDNN's (on a CPU: the CPU
    flash kernel); ``auto`` changes nothing. Checked by the aten op that actually ran."""
    from torch.nn.functional import scaled_dot_product_attention
    from torch.profiler import profile

    from workbench.models.attention import attention_kernels

    q = torch.randn(1, 2, 16, 8)

    def ops(choice):
        with profile() as prof, attention_kernels(choice):
            scaled_dot_product_attention(q, q, q)
        return {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key}

    math, flash = "aten::_scaled_dot_product_attention_math", "aten::_scaled_dot_product_flash_attention_for_cpu"
    assert math in ops("math") and flash not in ops("math")
    assert flash in ops("no-cudnn") and math not in ops("no-cudnn")
    assert flash in ops("auto") and math not in ops("auto")
    with pytest.raises(ValueError, match="no-cudnn"):
        attention_kernels("flash")


def test_flux_trains_without_cudnn_attention_on_a_gpu_by_default():
    """PyTorch's own pick, cuDNN, crashed the real-size FLUX step on an H100 where the other kernels trained
    finite (RESULTS.md, 2026-11-27): FLUX resolves to no-cudnn on CUDA, the UNets keep PyTorch's choice, a CPU
    keeps it for every family, and an explicit choice wins."""
    from workbench.likeness.config import TrainConfig
    from workbench.models import get_family

    def resolved(family, device, **options):
        return TrainConfig(family=family, **options).resolve(get_family(family), 10, device, 80 * 2**30).attention

    assert [resolved(f, "cuda") for f in ("flux", "random-flux", "tiny-flux")] == ["no-cudnn"] * 3
    assert [resolved(f, "cuda:1") for f in ("sdxl", "sd15")] == ["auto", "auto"]
    assert [resolved(f, "cpu") for f in ("flux", "sdxl")] == ["auto", "auto"]
    assert resolved("flux", "cuda", attention="auto") == "auto"
    assert resolved("sdxl", "cuda", attention="math") == "math"


def test_training_runs_under_the_chosen_attention(tiny_likeness, settings, analyzer, faces_dir, tmp_path,
                                                  monkeypatch):
    """The loop's micro-steps run inside ``attention_kernels(config.attention)``; the math kernel trains the
    fixture's losses up to float rounding, and the card records the choice. (Also: probes use the cached
    probe embeddings.)"""
    chosen = []
    real = train_module.attention_kernels
    monkeypatch.setattr(train_module, "attention_kernels", lambda c: (chosen.append(c), real(c))[1])
    from workbench.likeness import probe

    probed, render = [], probe.render_probes
    monkeypatch.setattr(probe, "render_probes", lambda *a: (probed.append(a[4] is not None), render(*a))[1])
    likeness = train_likeness(faces_dir / SET, tmp_path / "lk", family="tiny-sd", settings=settings,
                              analyzer=analyzer, progress=False, steps=2, checkpoint_every=1, attention="math")
    assert chosen == ["math", "math"] and likeness.card["config"]["attention"] == "math"
    assert probed == [True, True]  # every probe rendered from the embeddings cached before training
    losses = [r["loss"] for r in likeness.card["curve"]]
    assert losses == pytest.approx([r["loss"] for r in tiny_likeness.card["curve"][:2]], abs=1e-5)


@pytest.mark.parametrize("family", ["tiny-sd", "tiny-sdxl", "tiny-flux"])
def test_probes_from_cached_embeddings_equal_probes_from_text(family, settings):
    """The trainer encodes the probe prompts once, before the text encoders leave the GPU; the images
    are the ones the pipeline renders from the prompts' text, bit for bit (CFG's negatives included).
    A sliced VAE decodes them to within one level of 255."""
    from workbench.likeness.config import TrainConfig
    from workbench.likeness.probe import encode_probes, render_probes
    from workbench.models import get_family

    fam = get_family(family)
    pipe, _ = load_pipeline(fam, settings=settings)
    config = TrainConfig(family=family, probe_steps=2).resolve(fam, 5, "cpu")
    from_text = render_probes(pipe, config, fam, "ohwx person")
    embeds = encode_probes(pipe, config, fam, "ohwx person", torch.device("cpu"))
    from_embeds = render_probes(pipe, config, fam, "ohwx person", embeds)
    assert len(from_text) == len(config.probe_prompts) * len(config.probe_seeds) == len(from_embeds)
    for a, b in zip(from_text, from_embeds, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    pipe.vae.enable_slicing()  # the balanced and low memory tiers: one image at a time, the same images
    for a, b in zip(from_text, render_probes(pipe, config, fam, "ohwx person", embeds), strict=True):
        assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1


def test_compile_without_a_compiler_is_refused_before_loading(settings, analyzer, faces_dir, tmp_path,
                                                              monkeypatch):
    import torch._inductor.config as inductor

    from workbench.errors import WorkbenchError

    monkeypatch.setattr(train_module, "load_pipeline", lambda *a, **k: pytest.fail("loaded before the check"))
    # inductor's own patch: monkeypatch would delete the config key on undo (the config is not a plain object)
    with inductor.patch({"cpp.cxx": (None, str(tmp_path / "no-such-g++"))}), \
            pytest.raises(WorkbenchError, match="C\\+\\+ compiler.*g\\+\\+"):
        train_likeness(faces_dir / SET, tmp_path / "lk", family="tiny-sd", settings=settings, analyzer=analyzer,
                       progress=False, steps=2, compile=True)
    assert not (tmp_path / "lk").exists()  # refused before the folder is touched


def test_a_training_step_reads_the_device_once_whatever_the_accumulation(settings, analyzer, faces_dir, tmp_path):
    """A read of a device value (``.item()``, ``float()``) makes the host wait for the GPU; on an H100 the
    trainer's profiled SDXL step made 7.7 host syncs against plain diffusers' 1.7 on the same kernels
    (RESULTS.md, 2026-11-27). Counted here as aten reads of a scalar over a whole training: two optimizer
    steps of 3 micro-batches read exactly as often as two of one (it was 4 more: one per micro-batch)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Reads(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Reads.count += func is torch.ops.aten._local_scalar_dense.default
            return func(*args, **(kwargs or {}))

    def reads(accumulation):
        Reads.count = 0
        with Reads():
            likeness = train_likeness(faces_dir / SET, tmp_path / f"a{accumulation}", family="tiny-sd",
                                      settings=settings, analyzer=analyzer, progress=False, steps=2,
                                      checkpoint_every=2, gradient_accumulation=accumulation)
        return Reads.count, [r["loss"] for r in likeness.card["curve"]]

    (once, _), (thrice, losses) = reads(1), reads(3)
    assert thrice == once and all(np.isfinite(losses))


def test_upload_keeps_values_and_integer_dtypes():
    from workbench.models.architectures.base import upload

    like = torch.zeros(2, dtype=torch.float64)
    assert upload(torch.tensor([1.5, 2.0]), like).dtype == torch.float64
    assert upload(torch.tensor([3, 4]), like).dtype == torch.int64
    assert upload(torch.tensor([3, 4]), like).tolist() == [3, 4]


def test_a_likeness_records_where_its_time_went(tiny_likeness):
    """The manifest splits the call: check, model load, caches, the loop (steps and checkpoints) and the
    whole likeness without the load, which is what a speed target for a likeness measures."""
    from workbench.store import read_manifest

    timings = read_manifest(tiny_likeness.path).timings
    assert timings["checkpoints"] == len(tiny_likeness.card["curve"]) == 6
    assert 0 < timings["checkpoint_seconds"] < timings["train_seconds"]
    assert timings["seconds_per_step"] * 6 < timings["train_seconds"]
    parts = timings["check_seconds"] + timings["cache_seconds"] + timings["train_seconds"]
    assert parts <= timings["likeness_seconds"]
    assert timings["load_seconds"] > 0
    assert tiny_likeness.timings() == timings  # read from the manifest; the summary says them
    line = next(x for x in tiny_likeness.summary().splitlines() if x.strip().startswith("time"))
    assert f"{timings['likeness_seconds']:.1f} s without the model load" in line and "6 checkpoints" in line
    memory = next(x for x in tiny_likeness.summary().splitlines() if x.strip().startswith("memory"))
    assert memory.split(None, 1)[1] == "tier full, batch 1, no checkpointing, adamw, VAE batched"  # no GPU: no estimate


def test_likeness_load_refuses_unfinished(tmp_path):
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="workbench train"):
        Likeness.load(tmp_path)


def test_text_encoder_lora_prior_captions_and_kohya_round_trip(settings, analyzer, faces_dir, tmp_path):
    """Every optional part at once on tiny-sd, then the kohya export loads back to the same tensors,
    alphas and pixels as the diffusers file."""
    import shutil

    import numpy as np
    from peft.utils import get_peft_model_state_dict

    from workbench.models import get_family, load_pipeline

    selfies = tmp_path / "set"
    shutil.copytree(faces_dir / "lisa_debruine", selfies)
    (selfies / "01.txt").write_text("{subject} in a dark jumper")
    (selfies / "02.txt").write_text("studio light")
    likeness = train_likeness(selfies, tmp_path / "lk", family="tiny-sd", settings=settings, analyzer=analyzer,
                              progress=False, steps=4, rank=4, alpha=8, train_text_encoder=True,
                              prior_preservation=True, class_images=2, validation=2, seed=3)
    card = likeness.card
    assert len(list((tmp_path / "lk" / "class-images").glob("*.png"))) == 2
    captions = card["captions"]
    assert {"01.jpg", "02.jpg"} & captions.keys()  # seed 3 trains on at least one of them
    if "01.jpg" in captions:
        assert captions["01.jpg"] == "ohwx person in a dark jumper"
    if "02.jpg" in captions:
        assert captions["02.jpg"] == "photo of ohwx person, studio light"
    assert card["kohya_export"] == "lora_kohya.safetensors"

    def load(weight_name):
        pipe, _ = load_pipeline(get_family("tiny-sd"), None, settings)
        pipe.load_lora_weights(likeness.path, weight_name=weight_name, adapter_name="x")
        image = pipe("photo of ohwx person", num_inference_steps=2, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
        return pipe, image

    diffusers_pipe, diffusers_image = load("lora.safetensors")
    kohya_pipe, kohya_image = load("lora_kohya.safetensors")
    for module in ("unet", "text_encoder"):
        a = get_peft_model_state_dict(getattr(diffusers_pipe, module), adapter_name="x")
        b = get_peft_model_state_dict(getattr(kohya_pipe, module), adapter_name="x")
        assert a.keys() == b.keys() and len(a) > 0, module
        assert all(torch.equal(a[k], b[k]) for k in a), module
        assert getattr(diffusers_pipe, module).peft_config["x"].lora_alpha == \
            getattr(kohya_pipe, module).peft_config["x"].lora_alpha
    assert diffusers_pipe.unet.peft_config["x"].lora_alpha == 8  # alpha survived the diffusers file too
    assert np.array_equal(diffusers_image, kohya_image)


def test_text_encoder_lora_is_refused_for_flux(settings, analyzer, faces_dir, tmp_path):
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="sd/sdxl"):
        train_likeness(faces_dir / "lisa_debruine", tmp_path / "f", family="tiny-flux", settings=settings,
                       analyzer=analyzer, progress=False, steps=2, train_text_encoder=True)


def test_aspect_buckets(settings, analyzer, faces_dir, tmp_path):
    """SDXL's buckets are the usual ones; photos go to the bucket of their aspect; a mixed set trains."""
    from PIL import Image

    from workbench.likeness.prepare import face_crop, nearest_bucket
    from workbench.models import get_family

    assert get_family("sdxl").buckets()[:3] == [(1024, 1024), (896, 1152), (1152, 896)]
    assert nearest_bucket((3000, 4000), get_family("sdxl").buckets()) == (896, 1152)
    photo = Image.open(faces_dir / "lisa_debruine" / "05.jpg")
    assert face_crop(photo, None, (48, 64)).size == (48, 64)
    selfies = tmp_path / "mixed"
    selfies.mkdir()
    for name in ("01.jpg", "02.jpg", "03.jpg"):  # 3:4 portraits
        Image.open(faces_dir / "lisa_debruine" / name).save(selfies / name)
    Image.open(faces_dir / "lisa_debruine" / "07.jpg").crop((0, 100, 1152, 1252)).save(selfies / "square.jpg")
    Image.open(faces_dir / "lisa_debruine" / "08.jpg").crop((0, 200, 1152, 1064)).save(selfies / "wide.jpg")
    likeness = train_likeness(selfies, tmp_path / "lk", family="tiny-sdxl", settings=settings, analyzer=analyzer,
                              progress=False, steps=3, buckets=True, validation=0)
    assert np.isfinite(likeness.card["curve"][-1]["loss"]) and likeness.card["config"]["buckets"]


def _killed_after(monkeypatch, kill_at: int):
    """save_checkpoint that stops the run (Ctrl-C) right after writing step ``kill_at``."""
    real_save = train_module.save_checkpoint

    def die_after(out, pipe, adapter, optimizer, schedule, step, *rest):
        path = real_save(out, pipe, adapter, optimizer, schedule, step, *rest)
        if step == kill_at:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(train_module, "save_checkpoint", die_after)
    return real_save


def test_resume_refuses_other_training_settings_and_takes_other_memory_settings(settings, analyzer, faces_dir,
                                                                               tmp_path, monkeypatch):
    """Another rank once failed deep inside peft and another learning rate silently mixed two trainings in
    one LoRA; memory settings (checkpointing, the VAE, compile) may change, as after running out of memory."""
    from workbench.errors import ConfigError
    from workbench.store import read_manifest

    options = dict(family="tiny-sd", settings=settings, analyzer=analyzer, progress=False, steps=4,
                   checkpoint_every=2, learning_rate=1e-3)
    out = tmp_path / "lk"
    real_save = _killed_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_likeness(faces_dir / SET, out, **options)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    for change, said in (({"rank": 8}, r"holds another likeness: rank was 16 \(asked: 8\)\. .* --replace"),
                         ({"learning_rate": 1e-4}, r"learning_rate was 0.001 \(asked: 0.0001\)")):
        with pytest.raises(ConfigError, match=said):
            train_likeness(faces_dir / SET, out, **{**options, **change})
        assert read_manifest(out).config["rank"] == 16  # the record of what was trained is kept
    assert train_module.last_checkpoint(out) == 2
    other = tmp_path / "other-photos"  # the same set with one photo mirrored: other pixels, still a good selfie
    shutil.copytree(faces_dir / SET, other)
    first = other / "01.jpg"
    Image.open(first).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(first, quality=95)
    with pytest.raises(ConfigError, match=r"other photos \(1 of these 9 are new to it; 1 of its 9 are not among"):
        train_likeness(other, out, **options)
    moved = tmp_path / "moved"  # the same photos in another folder still resume
    shutil.copytree(faces_dir / SET, moved)
    resumed = train_likeness(moved, out, **options, memory="balanced", vae="tiled")
    assert [row["step"] for row in resumed.card["curve"]] == [2, 4]
    assert resumed.card["memory"]["gradient_checkpointing"] and resumed.card["memory"]["vae"] == "tiled"


def test_out_of_memory_says_what_fits_and_resumes(settings, analyzer, faces_dir, tmp_path, monkeypatch):
    """CUDA's out-of-memory error becomes advice: where it happened, the settings and their estimate, the
    flags that fit; the checkpoints stay and the advised rerun resumes from the last one."""
    from workbench.errors import WorkbenchError
    from workbench.models.architectures.sd import UNetAdapter
    from workbench.store import read_manifest

    options = dict(family="tiny-sd", settings=settings, analyzer=analyzer, progress=False, steps=4,
                   checkpoint_every=2, learning_rate=1e-3)
    real_loss, calls = UNetAdapter.loss, []

    def loss_until_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(UNetAdapter, "loss", loss_until_full)
    with pytest.raises(WorkbenchError) as failed:
        train_likeness(faces_dir / SET, tmp_path / "lk", **options)
    said = str(failed.value)
    assert "tiny-sd ran out of GPU memory at step 3 (memory tier full, batch 1, 64 px, fp32" in said
    assert "--memory balanced --batch-size 1" in said and "resumes from step 2" in said
    assert read_manifest(tmp_path / "lk").status == "failed"
    monkeypatch.setattr(UNetAdapter, "loss", real_loss)
    resumed = train_likeness(faces_dir / SET, tmp_path / "lk", **options, memory="balanced", batch_size=1)
    assert [row["step"] for row in resumed.card["curve"]] == [2, 4]
    assert resumed.card["memory"]["memory"] == "balanced"
