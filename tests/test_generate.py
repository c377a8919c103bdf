"""Grid runner, samplers, packs and PNG metadata on a tiny likeness."""

from __future__ import annotations

import hashlib

import pytest
from PIL import Image

from workbench.errors import ConfigError
from workbench.generate import SAMPLERS, generate, get_sampler
from workbench.generate.pngmeta import parse_a1111, read_params
from workbench.packs import builtin_packs, get_pack, load_pack

GRID = dict(samplers=["euler", "dpmpp_2m"], steps=[2, 3], seeds=[0, 1], prompts_per_pack=1)


def _digest(path):
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_grid_is_exact_resumable_and_bit_identical(tiny_likeness, settings, tmp_path):
    out = tmp_path / "run"
    run = generate(tiny_likeness, ["corporate-headshot", "beach"], out, settings=settings, progress=False, **GRID)
    assert len(run.table) == 2 * 2 * 2 * 2 and run.table["image_id"].is_unique
    files = sorted(out.rglob("*.png"))
    assert len(files) == 16
    digests = {f: _digest(f) for f in files}
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    generate(tiny_likeness, ["corporate-headshot", "beach"], out, settings=settings, progress=False, **GRID)
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes  # nothing re-rendered
    for victim in (files[1], files[10]):
        victim.unlink()
    again = generate(tiny_likeness, ["corporate-headshot", "beach"], out, settings=settings, progress=False, **GRID)
    assert len(again.table) == 16
    assert {f: _digest(f) for f in files} == digests  # the two re-rendered images are bit-identical
    assert sum(f.stat().st_mtime_ns != mtimes[f] for f in files) == 2


def test_png_metadata_round_trips(tiny_likeness, settings, tmp_path):
    run = generate(tiny_likeness, ["studio-portrait"], tmp_path / "r", samplers=["euler_a"], steps=[2], seeds=[7],
                   prompts_per_pack=1, settings=settings, progress=False)
    row = run.table.iloc[0]
    params = read_params(run.path / row["path"])
    assert params["seed"] == 7 and params["steps"] == 2 and params["sampler"] == "euler_a"
    assert "ohwx person" in params["prompt"] and params["tiny"] is True
    with Image.open(run.path / row["path"]) as image:
        parsed = parse_a1111(image.text["parameters"])
    assert parsed["prompt"] == params["prompt"] and parsed["Seed"] == "7" and parsed["Sampler"] == "Euler a"
    assert parsed["negative"] == params["negative"]


def test_baseline_without_likeness(settings, tmp_path):
    run = generate(None, ["beach"], tmp_path / "base", family="tiny-sd", steps=[2], seeds=[0], prompts_per_pack=2,
                   settings=settings, progress=False)
    assert len(run.table) == 2 and run.table["likeness"].isna().all()
    # favourites: starred in order, unstarred by a second toggle, only the run's own image ids
    from workbench import read_favourites, toggle_favourite

    first, second = run.table.image_id
    assert read_favourites(run.path) == []
    assert toggle_favourite(run.path, second) and toggle_favourite(run.path, first)
    assert read_favourites(run.path) == [second, first]
    assert not toggle_favourite(run.path, second) and read_favourites(run.path) == [first]
    with pytest.raises(ConfigError, match="not an image of run"):
        toggle_favourite(run.path, "../../etc/passwd")
    # a new generation into the run keeps the favourites
    generate(None, ["beach"], run.path, family="tiny-sd", steps=[2], seeds=[1], prompts_per_pack=2,
             settings=settings, progress=False)
    assert read_favourites(run.path) == [first]


def test_sampler_registry_checks_the_family():
    for name in ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "flow_euler"):
        assert name in SAMPLERS
    with pytest.raises(ConfigError, match="cannot drive a flux"):
        get_sampler("dpmpp_2m", "flux")
    with pytest.raises(ConfigError, match="cannot drive a sdxl"):
        get_sampler("flow_euler", "sdxl")
    with pytest.raises(ConfigError, match="euler_a"):
        get_sampler("euler-a", "sd")


def test_every_builtin_pack_validates():
    packs = builtin_packs()
    assert len(packs) >= 8
    for name in packs:
        pack = get_pack(name)
        assert pack.name == name and len(pack.prompts) >= 6
        assert len({p.id for p in pack.prompts}) == len(pack.prompts)


def test_broken_pack_names_file_line_and_field(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: my-pack\ndescription: x\nprompts:\n  - id: a\n    prompt: photo of {subject}\n"
                    "  - id: b\n    prompt: a photo with no subject\n")
    with pytest.raises(ConfigError) as err:
        load_pack(path)
    message = str(err.value)
    assert "broken.yaml:7" in message and "prompts.1.prompt" in message and "{subject}" in message
    path.write_text("name: My Pack\ndescription: x\nprompts: []\n")
    with pytest.raises(ConfigError, match="broken.yaml:1: field 'name'"):
        load_pack(path)


def test_prompt_and_pack_settings_resolve_under_explicit_arguments(tmp_path):
    """explicit argument > prompt > pack > family, and class variants pick the prompt text."""
    from workbench.generate.runner import plan_jobs
    from workbench.models import get_family

    path = tmp_path / "p.yaml"
    path.write_text("name: p\ndescription: d\nsampler: ddim\nsteps: 7\nguidance: 4\nprompts:\n"
                    "  - {id: a, prompt: 'photo of {subject}', sampler: unipc, steps: 9}\n"
                    "  - {id: b, prompt: 'photo of {subject}', variants: {woman: 'portrait of {subject}, blouse'}}\n")
    pack, family = load_pack(path), get_family("tiny-sd")
    jobs = plan_jobs([pack], None, None, [0], "ohwx woman", "woman", None, None, None, family)
    by_id = {j.prompt_id: j for j in jobs}
    assert (by_id["a"].sampler, by_id["a"].steps, by_id["a"].guidance) == ("unipc", 9, 4.0)
    assert (by_id["b"].sampler, by_id["b"].steps, by_id["b"].size) == ("ddim", 7, family.resolution)
    assert by_id["b"].prompt == "portrait of ohwx woman, blouse"
    forced = plan_jobs([pack], ["euler"], [3], [0], "ohwx man", "man", 2.0, 48, None, family)
    assert {(j.sampler, j.steps, j.guidance, j.size) for j in forced} == {("euler", 3, 2.0, 48)}
    assert {j.prompt for j in forced} == {"photo of ohwx man"}


@pytest.mark.slow
def test_compiled_rendering_matches_eager_and_reports_its_compile_time(tiny_likeness, settings, tmp_path,
                                                                      monkeypatch):
    """``compile=True``: regionally compiled blocks with the LoRA fused render the eager images up to float
    rounding; the compilation is paid by warm-ups, one per batch shape (here 2 and a last batch of 1), kept
    apart (``timings.compile_seconds``): rendering the grid compiles nothing more, and the warm-ups write
    nothing (the images are the grid's)."""
    import numpy as np
    from torch._dynamo.utils import counters

    from workbench.generate import runner
    from workbench.store import read_manifest

    graphs, real = [], runner.warm_up
    monkeypatch.setattr(runner, "warm_up", lambda *a: (real(*a), graphs.append(counters["stats"]["unique_graphs"]))[0])
    options = dict(steps=[2], seeds=[0, 1, 2], prompts_per_pack=1, batch_size=2, settings=settings, progress=False)
    eager = generate(tiny_likeness, ["beach"], tmp_path / "eager", **options)
    compiled = generate(tiny_likeness, ["beach"], tmp_path / "compiled", compile=True, **options)
    assert len(graphs) == 2 and counters["stats"]["unique_graphs"] == graphs[-1]
    timings = read_manifest(compiled.path).timings
    assert timings["compile_seconds"] > 0 and "compile_seconds" not in read_manifest(eager.path).timings
    pngs = [sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*.png")) for run in (eager, compiled)]
    assert len(pngs[0]) == 3 and pngs[0] == pngs[1]
    for a, b in zip(eager.table.sort_values("image_id").path, compiled.table.sort_values("image_id").path,
                    strict=True):
        pixels = [np.asarray(Image.open(run.path / p), dtype=np.int16) for run, p in ((eager, a), (compiled, b))]
        assert np.abs(pixels[0] - pixels[1]).max() <= 2


def test_out_of_memory_keeps_the_images_and_names_the_batch_that_fits(tiny_likeness, settings, tmp_path, monkeypatch):
    """CUDA's out-of-memory error mid-run becomes advice; the images written stay, and the advised rerun
    renders only the missing ones."""
    import torch

    from workbench.errors import WorkbenchError
    from workbench.generate import runner
    from workbench.store import read_manifest

    real_render, calls = runner.render_batch, []

    def render_until_full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(runner, "render_batch", render_until_full)
    out, grid = tmp_path / "run", dict(seeds=[0, 1, 2, 3], prompts_per_pack=1, steps=[2])
    with pytest.raises(WorkbenchError, match=r"rendering 2 images of 64 px in one pipeline call \(tiny-sd\); the 2 "
                                             r"images written are kept .* Rerun with --batch-size 1\."):
        generate(tiny_likeness, ["beach"], out, settings=settings, progress=False, batch_size=2, **grid)
    assert read_manifest(out).status == "failed"
    written = {f: f.stat().st_mtime_ns for f in out.rglob("*.png")}
    assert len(written) == 2
    monkeypatch.setattr(runner, "render_batch", real_render)
    run = generate(tiny_likeness, ["beach"], out, settings=settings, progress=False, batch_size=1, **grid)
    assert len(run.table) == 4 and all(f.stat().st_mtime_ns == t for f, t in written.items())


def test_vae_decodes_one_image_at_a_time_and_old_folders_keep_their_decode(tiny_likeness, settings, tmp_path):
    """A new run decodes sliced (a batch decoded at once held 12 GB at 1024 px in fp32); a folder rendered
    with the batched decode resumes with it, so its re-rendered images stay bit-identical."""
    from workbench.generate import runner
    from workbench.store import Manifest, read_manifest, write_manifest

    grid = dict(seeds=[0, 1, 2, 3], prompts_per_pack=1, steps=[2], batch_size=4)
    renderer = runner.load_renderer(tiny_likeness, runner.get_family("tiny-sd"), None, settings)
    generate(tiny_likeness, ["beach"], tmp_path / "new", settings=settings, progress=False, renderer=renderer, **grid)
    assert read_manifest(tmp_path / "new").config["vae_decode"] == "sliced" and renderer[0].vae.use_slicing

    old = tmp_path / "old"  # a folder from before: batched decode, and no record of it
    old.mkdir()
    write_manifest(old, Manifest(kind="generation", config={"vae_decode": "batched"}))
    generate(tiny_likeness, ["beach"], old, settings=settings, progress=False, renderer=renderer, **grid)
    assert not renderer[0].vae.use_slicing
    manifest = read_manifest(old)
    manifest.config.pop("vae_decode")
    write_manifest(old, manifest)
    files = sorted(old.rglob("*.png"))
    digest = _digest(files[2])
    files[2].unlink()
    generate(tiny_likeness, ["beach"], old, settings=settings, progress=False, renderer=renderer, **grid)
    assert read_manifest(old).config["vae_decode"] == "batched" and _digest(files[2]) == digest
