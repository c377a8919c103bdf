"""The ``workbench`` command: a thin shell over the public API. User errors print one line and exit 1."""

from __future__ import annotations

import atexit
import gc
import json
import sys
from pathlib import Path

import typer

from workbench import WorkbenchError, resources

app = typer.Typer(help="Likeness Workbench: check selfies, train a likeness, generate packs, score identity.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
packs_app = typer.Typer(help="Style packs: list, show, validate.", no_args_is_help=True)
likeness_app = typer.Typer(help="Inspect trained likenesses.", no_args_is_help=True)
faces_app = typer.Typer(help="Face recognizers: verify one on your own photos.", no_args_is_help=True)
app.add_typer(faces_app, name="faces")
app.add_typer(packs_app, name="packs")
app.add_typer(likeness_app, name="likeness")

HomeOpt = typer.Option(None, "--home", help="Workspace folder (default: $WORKBENCH_HOME or ./workspace).")


def limit(name: str) -> dict:
    """typer's min/max from the one table of bounds (workbench/limits.py); --help shows the range."""
    from workbench import LIMITS

    return {"min": LIMITS[name].low, "max": LIMITS[name].high}


def _registry_help() -> dict[str, str]:
    """Help texts that list what the registries hold, so they cannot drift from what exists. Every registry
    read here is data only (no torch, no image code): `workbench --help` stays instant."""
    from workbench import (
        ARMS,
        DEGRADATION_KINDS,
        FAMILIES,
        RECOGNIZERS,
        SAMPLERS,
        STUDY_KINDS,
        describe_degradations,
        describe_study_kinds,
    )
    from workbench.app import TABS

    return {
        "sampler": f"Sampler (repeatable): {', '.join(sorted(SAMPLERS))} (default: prompt > pack > family).",
        "family": f"Model family: {', '.join(FAMILIES)}.",
        "arm": f"How the identity gets in: {', '.join(ARMS)} (the IP-Adapter arms take the likeness's training "
               "photos).",
        "recognizers": f"{', '.join(RECOGNIZERS)}, insightface:<pack dir>, auto, or all (repeatable).",
        "recognizer": f"{', '.join(RECOGNIZERS)}, insightface:<pack dir> or auto.",
        "kind": f"One of: {', '.join(DEGRADATION_KINDS)}.",
        "strength": f"Per kind, its range and unit: {describe_degradations()}.",
        "study": f"Run or resume a study of a kind in the registry ({describe_study_kinds()}): cells -> table -> "
                 "plots -> report.",
        "study_kinds": ", ".join(STUDY_KINDS),
        "app": f"Serve the Gradio app (tabs: {', '.join(TABS)}). Each signed-in user gets their own workspace "
               "folder.",
    }


HELP = _registry_help()
SAMPLER_HELP = HELP["sampler"]


def _settings(home: Path | None, device: str | None = None):
    from workbench import Settings

    kwargs = {}
    if home is not None:
        kwargs["home"] = home
    if device is not None:
        kwargs["device"] = device
    return Settings(**kwargs)


def _split_base(base: str | None, family: str | None) -> tuple[str, str | None]:
    """``--base sdxl`` names a family; any other value is a hub id, directory or file for ``--family``."""
    from workbench import FAMILIES

    if base in FAMILIES:
        return base, None
    return family or ("sdxl" if base else "tiny-sd"), base


@app.command()
def demo(family: str = typer.Option("tiny-sd", help=HELP["family"] + " tiny-sd runs on CPU in about a minute."),
         base: str = typer.Option(None, help="A family name (sdxl) or a hub id / local dir / .safetensors file."),
         home: Path = HomeOpt, device: str = typer.Option(None, help="cpu, cuda, mps (default: best available).")):
    """Run the whole chain on the bundled sample selfies and write a report."""
    from workbench import run_demo

    family, base = _split_base(base, family)
    page = run_demo(_settings(home, device), family=family, base=base)
    typer.echo(f"report: {page}\nmarkdown: {page.parent / 'report.md'}")


NOT_READY_EXIT = 2  # `check`: the set cannot train as it is (a script can gate on it); 1 stays a usage error


@app.command()
def check(folder: Path = typer.Argument(..., help="Folder of selfies."),
          json_out: Path = typer.Option(None, "--json", help="Write the report as JSON here."),
          html_out: Path = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
          out: Path = typer.Option(None, help="Save the full check (JSON, Parquet, manifest) in this folder."),
          home: Path = HomeOpt):
    """Check a folder of selfies: per-photo flags with advice, and a set verdict. Exit status: 0 when the set
    is ready or usable with warnings, 2 when it is not ready (no usable face, too few photos...), 1 on an
    error."""
    from workbench import check_selfies, save_check_file

    report = check_selfies(folder, out=out)
    for photo in report.photos:
        typer.echo(f"{photo.status:5} {photo.file:30} {', '.join(photo.flags)}")
        for advice in photo.advice:
            typer.echo(f"      - {advice}")
    photos = report.set.get("photos", report.set["count"])
    typer.echo(f"verdict: {report.verdict} ({report.set['usable']} of {photos} photos usable)")
    for advice in report.set["advice"]:
        typer.echo(f"  - {advice}")
    workspace = _settings(home).home
    for path in (json_out, html_out):
        if path:
            save_check_file(report, path, workspace)
    if report.verdict == "not_ready":
        raise typer.Exit(NOT_READY_EXIT)


@app.command()
def degrade(folder: Path = typer.Argument(..., help="Selfie set to degrade."),
            kind: str = typer.Option(..., help=HELP["kind"]),
            strength: float = typer.Option(..., help=HELP["strength"]),
            out: Path = typer.Option(..., help="New selfie set folder (must not exist or be empty)."),
            seed: int = typer.Option(0),
            fraction: float = typer.Option(1.0, help="Share of photos degraded, in (0, 1]."),
            others: Path = typer.Option(None, help="Photos of someone else (for --kind intruder).")):
    """Write a degraded copy of a selfie set, with a manifest of what was done to which photo."""
    from workbench import DEGRADATION_KINDS as KINDS
    from workbench import degrade_set

    target = degrade_set(folder, out, kind, strength, seed=seed, fraction=fraction, others=others)
    typer.echo(f"{kind} at strength {strength:g} ({KINDS[kind]}) -> {target}")


@app.command()
def train(selfies: Path = typer.Argument(..., help="Folder of selfies (checked first)."),
          out: Path = typer.Option(..., help="Likeness folder to write (resumes if interrupted)."),
          family: str = typer.Option("tiny-sd", help=HELP["family"]), base: str = typer.Option(None),
          steps: int = typer.Option(None, **limit("train_steps"), help="Optimizer steps (default: 80 samples per "
                                    "photo, 400-1200, divided by the batch; tiny: 20)."),
          rank: int = typer.Option(16, **limit("rank")),
          learning_rate: float = typer.Option(1e-4, **limit("learning_rate")),
          seed: int = typer.Option(0, **limit("seed")),
          class_word: str = typer.Option("person", help="man, woman, person..."),
          token: str = typer.Option("ohwx"),
          precision: str = typer.Option(None, help="fp16, bf16 or fp32: weights and autocast (default: fp32 on "
                                        "a CPU, the family's dtype on a GPU)."),
          mixed_precision: str = typer.Option(None, hidden=True, help="Old name of --precision (no = fp32)."),
          resolution: int = typer.Option(None, **limit("resolution"), help="Training crop side in px (default: the "
                                         "family's)."),
          batch_size: int = typer.Option(None, **limit("batch_size"), help="Samples per step (default: 1 on CPU, from "
                                         "free memory on a GPU)."),
          memory: str = typer.Option("auto", help="auto, full, balanced (gradient checkpointing) or low (+ 8-bit "
                                     "AdamW, 4-bit FLUX base)."),
          checkpoint_every: int = typer.Option(None, **limit("checkpoint_every"), help="Probe and save every N steps "
                                               "(default: 4 times)."),
          probe_steps: int = typer.Option(None, **limit("inference_steps"), help="Inference steps of the probe images "
                                          "(default: the family's)."),
          alpha: float = typer.Option(None, help="LoRA alpha (default: the rank)."),
          train_text_encoder: bool = typer.Option(False, help="LoRA on the CLIP text encoder(s) too (sd/sdxl)."),
          prior_preservation: bool = typer.Option(False, help="DreamBooth class prior from base-model images."),
          class_images: int = typer.Option(None, **limit("class_images"), help="Class images for the prior (default: "
                                           "2 per photo, >= 50)."),
          captions: Path = typer.Option(None, help="captions.csv (file,caption); default: sidecar <photo>.txt."),
          validation: int = typer.Option(None, **limit("photos_per_group"), help="Photos that choose the checkpoint "
                                         "(default: 2 from 6 photos, 1 from 3)."),
          test: int = typer.Option(None, **limit("photos_per_group"), help="Photos only reported on, never trained on "
                                   "or chosen by (default: none under 12 photos, else 15%; whole shoots when there are "
                                   "2+)."),
          splits: Path = typer.Option(None, help="CSV file,group (train, validation, test): your own groups."),
          log_with: list[str] = typer.Option([], "--log-with", help="Tracker(s): tensorboard, mlflow, wandb, trackio "
                                             "(loss, learning rate, checkpoint curve, probe images)."),
          gradient_checkpointing: bool = typer.Option(None, help="Default: as the memory tier says."),
          buckets: bool = typer.Option(False, help="Aspect buckets: keep each photo's aspect instead of square."),
          compile: bool = typer.Option(False, "--compile", help="Regional torch.compile of the denoiser's blocks "
                                       "(GPU speed; the compile time is reported separately)."),
          lean_lora: bool = typer.Option(False, "--lean-lora", help="LoRA layers as plain functional calls (peft's "
                                         "numbers bit for bit, fewer kernels; a GPU speed gain is not yet measured)."),
          attention: str = typer.Option(None, help="SDPA kernels for the training steps: auto (PyTorch's "
                                        "choice), no-cudnn (try it when a GPU training's loss turns NaN or dies in "
                                        "backward), math (slow reference). Default: the family's on a GPU (FLUX: "
                                        "no-cudnn), auto on a CPU."),
          replace: bool = typer.Option(False, "--replace", help="OUT holds a likeness of other photos or settings: "
                                       "delete it, and what was made from it, first (a receipt is printed)."),
          home: Path = HomeOpt, device: str = typer.Option(None)):
    """Train a likeness (DreamBooth-LoRA) from a folder of selfies. Writes lora.safetensors (diffusers),
    lora_kohya.safetensors (ComfyUI / A1111, sd and sdxl), likeness.json and validation images."""
    from workbench import is_done, train_likeness

    family, base = _split_base(base, family)
    was_done = is_done(out)
    likeness = train_likeness(selfies, out, family=family, base=base, settings=_settings(home, device),
                              steps=steps, rank=rank, learning_rate=learning_rate, seed=seed,
                              class_word=class_word, token=token, alpha=alpha,
                              precision=precision or ({"no": "fp32"}.get(mixed_precision, mixed_precision)),
                              resolution=resolution, batch_size=batch_size, memory=memory,
                              checkpoint_every=checkpoint_every, probe_steps=probe_steps,
                              train_text_encoder=train_text_encoder, prior_preservation=prior_preservation,
                              class_images=class_images, captions=str(captions) if captions else None,
                              gradient_checkpointing=gradient_checkpointing, buckets=buckets, compile=compile,
                              lean_lora=lean_lora,
                              attention=attention,
                              validation=validation, test=test, splits=str(splits) if splits else None,
                              log_with=list(log_with), replace=replace)
    if was_done and is_done(out) and not replace:
        typer.echo(f"{out}: already trained from these photos with these settings; nothing to do.")
    typer.echo(likeness.summary())


@likeness_app.command("show")
def likeness_show(path: Path):
    """Print a likeness card: family, subject, checkpoint curve, chosen step."""
    from workbench import Likeness

    typer.echo(Likeness.load(path).summary())


@app.command("generate")
def generate_cmd(likeness: str = typer.Argument(..., help="Likeness folder, or 'none' for the base model alone."),
                 pack: list[str] = typer.Option(..., "--pack", help="Pack name or YAML file (repeatable)."),
                 sampler: list[str] = typer.Option(None, "--sampler", help=SAMPLER_HELP),
                 steps: list[int] = typer.Option(None, "--steps", **limit("inference_steps"),
                                                 help="Denoising steps (repeatable; default: prompt > pack > family)."),
                 seeds: list[int] = typer.Option([0], "--seeds", **limit("seed"), help="Seeds (repeatable)."),
                 guidance: float = typer.Option(None, **limit("guidance")),
                 out: Path = typer.Option(..., help="Run folder (re-running renders only what is missing)."),
                 family: str = typer.Option(None, help=f"For 'none': {HELP['family']}"),
                 base: str = typer.Option(None, help="Base weights for 'none': a family name, hub id, local "
                                          "directory or .safetensors file (a likeness names its own)."),
                 size: int = typer.Option(None, **limit("image_size"), help="Image side in px (default: prompt > pack "
                                          "> family)."),
                 batch_size: int = typer.Option(4, **limit("batch_size"), help="Images per pipeline call."),
                 compile: bool = typer.Option(False, "--compile", help="torch.compile the denoiser (GPU; the "
                                              "compile time is reported separately)."),
                 arm: str = typer.Option("likeness", help=HELP["arm"]),
                 ip_scale: float = typer.Option(0.6, **limit("ip_scale"), help="IP-Adapter image-prompt scale."),
                 detailer: bool = typer.Option(False, "--detailer", help="Re-render small faces at native "
                                               "resolution (inpainting), keeping the rest of the image."),
                 prompts_per_pack: int = typer.Option(None, **limit("prompts_per_pack")),
                 grid: bool = typer.Option(False, help="Contact sheet."),
                 fp8: bool = typer.Option(False, "--fp8", help="The denoiser blocks' linears in float8 (Ada/Hopper "
                                          "GPUs; not exact: compare against a bf16 run). Measured on an H100: "
                                          "FLUX 1.32x faster, SDXL no faster."),
                 replace: bool = typer.Option(False, "--replace", help="OUT holds a run made with another likeness or "
                                              "settings: delete it first (a receipt is printed)."),
                 home: Path = HomeOpt, device: str = typer.Option(None)):
    """Render packs x samplers x steps x seeds with a likeness."""
    from workbench import generate

    if base is not None or family is not None:
        family, base = _split_base(base, family)
    if any(n < 1 for n in steps or []):
        raise typer.BadParameter("every --steps must be at least 1", param_hint="--steps")
    run = generate(None if likeness == "none" else likeness, pack, out, samplers=sampler or None,
                   steps=steps or None, seeds=seeds, guidance=guidance, family=family, base=base, size=size,
                   batch_size=batch_size, compile=compile, prompts_per_pack=prompts_per_pack,
                   settings=_settings(home, device), arm=arm, ip_scale=ip_scale, detailer={} if detailer else None,
                   fp8=fp8, replace=replace)
    if grid:
        from workbench import contact_sheets

        for sheet in contact_sheets(run):
            typer.echo(f"contact sheet: {sheet}")
    typer.echo(f"{len(run.table)} images in {run.path}")


@app.command("score")
def score_cmd(run: Path, references: Path = typer.Option(None, help="Test photos to score against (default: the "
                                                         "likeness's test split)."),
              likeness: Path = typer.Option(None, help="Take the test photos from this likeness (for a base-model "
                                                       "run compared with it)."),
              recognizers: list[str] = typer.Option(["auto"], "--recognizers",
                                                    help=HELP["recognizers"]),
              clip_model: str = typer.Option("openai/clip-vit-base-patch16",
                                             help="CLIP hub id or local dir for CLIP score, CLIP-IQA, FID/KID; "
                                                  "'none' to skip."),
              fid_reference: Path = typer.Option(None, help="Real photos for FID/KID (at least 50; none: FID/KID are "
                                                          "reported missing)."),
              clip_iqa_model: str = typer.Option("clip_iqa", help="CLIP-IQA weights: clip_iqa (its own, via piq), a "
                                                 "CLIP hub id or dir, or 'none'.")):
    """Score a generation run (identity + quality) and write scores.parquet."""
    from workbench import score, summarize

    table = score(run, references=references, likeness=likeness, recognizers=list(recognizers),
                  clip_iqa_model=None if clip_iqa_model == "none" else clip_iqa_model,
                  clip_model=None if clip_model == "none" else clip_model, fid_reference=fid_reference)
    typer.echo(summarize(table, ["sampler", "steps"]).round(4).to_string(index=False))
    missing = table[table["value"].isna()].groupby(["metric", "reason"]).size().reset_index(name="rows")
    if not missing.empty:
        typer.echo("\nmissing values and why:")
        typer.echo(missing.to_string(index=False, max_colwidth=110))
    typer.echo(f"scores: {run / 'scores.parquet'}")


@app.command()
def delete(path: Path = typer.Argument(None, help="A selfie set, likeness, run, study or photo in the workspace."),
           cascade: bool = typer.Option(False, help="Also everything derived from it (likenesses from a set, runs "
                                        "from a likeness, reports from a run), following the manifests."),
           older_than: str = typer.Option(None, help="Instead of PATH: every stage older than this (30d, 12h)."),
           dry_run: bool = typer.Option(False, help="List what would be removed; remove nothing."),
           home: Path = HomeOpt):
    """Remove a person's data for real, with a receipt of every file removed. Refuses paths outside the
    workspace."""
    from workbench import delete_data
    from workbench import sweep_data as sweep

    settings = _settings(home)
    if (path is None) == (older_than is None):
        raise typer.BadParameter("give either PATH or --older-than")
    receipt = sweep(settings.home, older_than, dry_run) if older_than else delete_data(
        path, settings.home, cascade=cascade, dry_run=dry_run)
    for line in receipt.lines():
        typer.echo(("would be " if dry_run and line.startswith("removed") else "") + line)
    typer.echo(f"{len(receipt.removed_files)} files {'would be ' if dry_run else ''}removed"
               + (f"; {len(receipt.skipped)} could not be removed (listed above)" if receipt.skipped else "")
               + (f"; {len(receipt.problems)} unreadable manifests (listed above)" if receipt.problems else ""))
    if receipt.skipped:
        raise WorkbenchError(f"{len(receipt.skipped)} item(s) could not be removed; see 'not removed' above.")


RAY_ADDRESS_HELP = ("Ray cluster: auto, or ray://HOST:PORT (default: the Ray that `ray start` left on this machine, "
                    "else a local one for this run).")


@app.command(help=HELP["study"])
def study(spec: str = typer.Argument(..., help="Study YAML, or a shipped study's name (sampler-steps-tiny)."),
          out: Path = typer.Option(None, help="Study folder (default: <home>/reports/study-<name>)."),
          shard: str = typer.Option(None, help="i/n: run every n-th cell from i (processes you start yourself)."),
          executor: str = typer.Option("serial", help="serial (this process) or ray (cells as Ray tasks)."),
          address: str = typer.Option(None, help=RAY_ADDRESS_HELP),
          max_retries: int = typer.Option(2, min=0, help="Retries of a failed cell (Ray) before it is recorded "
                                          "as failed."),
          check: bool = typer.Option(False, "--check", help="Only say what the design can conclude (people, "
                                     "test photos by shoot, the smallest p-value, which intervals exist); run "
                                     "nothing."),
          home: Path = HomeOpt, device: str = typer.Option(None)):
    path = resources.spec_path(spec, "study")  # a misspelt name is refused before anything starts
    if check:
        from workbench import design_check, load_spec

        typer.echo("\n".join(design_check(load_spec(path)).lines()))
        return
    if executor == "ray":  # first: the study's modules load while Ray starts (or connects)
        from workbench import connect_ray

        connect_ray(address, imports=["workbench.studies", "workbench.studies.executors"])
    from workbench import Workspace, is_done, load_spec, parse_shard, run_study

    settings = _settings(home, device)
    loaded = load_spec(path)
    out = out or Workspace(settings.home).area("reports") / f"study-{loaded.name}"
    folder = run_study(loaded, out, settings=settings, shard=parse_shard(shard), executor=executor, address=address,
                       max_retries=max_retries)
    if is_done(folder):
        typer.echo(f"table: {folder / 'study.parquet'}\nreport: {folder / 'report' / 'index.html'}")
    else:
        typer.echo(f"this shard's cells are done; run the other shards (or this command again) to finish {folder}")


@app.command()
def suite(spec: str = typer.Argument(..., help="Suite YAML, or a shipped suite's name (tiny-demo)."),
          executor: str = typer.Option("serial", help="serial, or ray (the suite as one Ray task, on a GPU "
                                       "worker when its family needs one)."),
          address: str = typer.Option(None, help=RAY_ADDRESS_HELP),
          home: Path = HomeOpt, device: str = typer.Option(None)):
    """Run a QA suite: builds what is missing, checks each threshold, writes the report; exit 0 = pass, 1 = fail."""
    path = resources.spec_path(spec, "suite")
    if executor == "ray":
        from workbench import connect_ray

        connect_ray(address, warm=1, imports=["workbench.studies.suites"])
    from workbench import run_suite

    result = run_suite(path, settings=_settings(home, device), executor=executor,
                       address=address)
    for check in result.checks:
        typer.echo(("PASS  " if check["passed"] else "FAIL  ") + check["message"])
    typer.echo(f"suite {result.name}: {'PASS' if result.passed else 'FAIL'}; report: {result.report}")
    if not result.passed:
        raise typer.Exit(1)


@app.command("app", help=HELP["app"])
def app_cmd(host: str = typer.Option("127.0.0.1", help="Interface to bind; non-loopback needs --auth."),
            port: int = typer.Option(7860),
            auth: list[str] = typer.Option(None, help="USER:PASS sign-in; repeat it, once per person."),
            auth_file: Path = typer.Option(None, help="A file of USER:PASS lines (chmod 600), one per person."),
            turn_seconds: float = typer.Option(120, **limit("turn_seconds"),
                                               help="How long one person's job runs while another's waits; it "
                                                    "then pauses and goes on after the other's turn."),
            max_photo_mb: float = typer.Option(25, **limit("photo_megabytes"),
                                               help="The largest photo taken; a larger one is refused alone."),
            share: bool = typer.Option(False, help="A public gradio.live link (needs --auth)."),
            home: Path = HomeOpt, device: str = typer.Option(None)):
    from .app import launch, parse_auth

    parse_auth(auth, host, share, auth_file)  # refuse before importing gradio
    launch(_settings(home, device), host=host, port=port, auth=auth, share=share, auth_file=auth_file,
           turn_seconds=turn_seconds, max_photo_mb=max_photo_mb)


@app.command()
def memory(family: str = typer.Option("sdxl", help="A real family: sd15, sdxl, flux (or random-*)."),
           resolution: int = typer.Option(None, min=32, help="Training side in px (default: the family's)."),
           precision: str = typer.Option(None, help="fp16, bf16 or fp32 (default: the family's GPU dtype)."),
           rank: int = typer.Option(16, min=1),
           train_text_encoder: bool = typer.Option(False, help="The CLIP encoders' LoRA trains too (sd/sdxl)."),
           prior_preservation: bool = typer.Option(False, help="A class-image batch in every step too."),
           gpu_gb: float = typer.Option(
               None, min=1, help="Free GPU memory to plan for (default: this machine's GPU, if it has one)."),
           device: str = typer.Option(None, help="The GPU to read the free memory of (default cuda:0).")):
    """What training needs in GPU memory: every memory tier and batch with its estimated peak, and what
    `train --memory auto` picks on this GPU (or on --gpu-gb). Estimates: the trainer's step traced on the
    meta device (benchmarks/training_memory.py), within 2 % of the peaks measured on an H100."""
    from workbench import StepExtras, get_family, memory_table

    fam = get_family(family)
    source = "given"
    if gpu_gb is None:
        import torch

        if torch.cuda.is_available():
            index = torch.device(device or "cuda:0").index or 0
            gpu_gb, source = torch.cuda.mem_get_info(index)[0] / 1024**3, f"free on cuda:{index}"
    table = memory_table(fam, resolution, precision, rank, gpu_gb, StepExtras(train_text_encoder, prior_preservation))
    said = f"on {gpu_gb:.1f} GB ({source}; the plan keeps 10 % spare)" if gpu_gb is not None else \
        "(no GPU here: pass --gpu-gb to see what fits)"
    extras = "".join(f" + {what}" for what, on in (("text-encoder LoRA", train_text_encoder),
                                                      ("prior preservation", prior_preservation)) if on)
    typer.echo(f"{fam.name} LoRA r{rank}{extras} at {resolution or fam.resolution} px {said}")
    shown = table if gpu_gb is not None else table.drop(columns=["fits", "auto"])
    if gpu_gb is not None:
        shown = shown.assign(auto=shown["auto"].map({True: "<- auto", False: ""}))
        if not table["auto"].any():
            typer.echo("nothing fits: lower --resolution, or use a larger GPU")
    typer.echo(shown.to_string(index=False))


@app.command()
def models(home: Path = HomeOpt):
    """List model families, where their weights are, and their licences."""
    from workbench import FAMILIES, weights_status

    settings = _settings(home)
    for fam in FAMILIES.values():
        typer.echo(f"{fam.name:10} {fam.pipeline_class:26} {fam.resolution:>5}px  {weights_status(fam, settings)}")
        typer.echo(f"{'':10} licence: {fam.licence}")


@packs_app.command("list")
def packs_list():
    """Built-in packs."""
    from workbench import builtin_packs, get_pack

    for name in builtin_packs():
        pack = get_pack(name)
        typer.echo(f"{name:22} {len(pack.prompts)} prompts  {pack.description}")


@packs_app.command("show")
def packs_show(name: str):
    """Print a pack's prompts."""
    from workbench import get_pack

    typer.echo(json.dumps(get_pack(name).model_dump(), indent=2))


@packs_app.command("validate")
def packs_validate(file: Path):
    """Validate a pack YAML file (errors name file, line and field)."""
    from workbench import load_pack

    pack = load_pack(file)
    typer.echo(f"{file}: ok ({pack.name}, {len(pack.prompts)} prompts)")


@faces_app.command("list")
def faces_list():
    """Recognizers, whether each can run here, and its licence."""
    from workbench import FMRS, RECOGNIZERS, ModelNotAvailable, get_analyzer
    from workbench import find_calibration as find

    for name in RECOGNIZERS:
        try:
            analyzer = get_analyzer(name)
        except ModelNotAvailable as missing:
            typer.echo(f"{name:12} missing    {missing}")
            continue
        runs_on = getattr(getattr(analyzer, "backend", analyzer), "runs_on", "?")
        typer.echo(f"{name:12} ready      {analyzer.version}\n{'':12} licence: {analyzer.licence}\n"
                   f"{'':12} runs on: {runs_on}\n{'':12} model sha256: {analyzer.model_hash[:16]}")
        record = find(analyzer, _settings(None).home)
        if record is None:
            typer.echo(f"{'':12} calibration: none (run `workbench faces calibrate DIR --recognizer {name}`)")
            continue
        typer.echo(f"{'':12} calibration: {record['identity_set']}, {record['impostor_pairs']} impostor pairs")
        for fmr in FMRS:
            entry = record["thresholds"][f"{fmr:g}"]
            typer.echo(f"{'':14}FMR {fmr:g}: similarity >= {entry['threshold']:.4f}, FNMR {entry['fnmr']:.3f}"
                       + ("" if entry["resolvable"] else f"  (not resolved: needs {entry['impostor_pairs_needed']} "
                                                         "impostor pairs; the highest impostor similarity)"))


@faces_app.command("calibrate")
def faces_calibrate(folder: Path = typer.Argument(..., help="Folder of <identity>/<photos> (many people)."),
                    recognizer: str = typer.Option("dlib", help=HELP["recognizer"]),
                    name: str = typer.Option(None, help="A name for the identity set (default: the folder's)."),
                    home: Path = HomeOpt):
    """Thresholds at FMR 1e-2/1e-3/1e-4 on your identities, saved for this recognizer model; id_match_rate
    then uses them."""
    from workbench import calibrate_recognizer as calibrate
    from workbench import get_analyzer
    from workbench import save_calibration as save

    record = calibrate(folder, get_analyzer(recognizer), name)
    path = save(record, _settings(home).home)
    for key, entry in record["thresholds"].items():
        typer.echo(f"FMR {key}: similarity >= {entry['threshold']:.4f} (FNMR {entry['fnmr']:.3f})"
                   + ("" if entry["resolvable"] else f"  not resolved: {record['impostor_pairs']} impostor pairs, "
                                                     f"{entry['impostor_pairs_needed']} needed (10 / FMR); "
                                                     "id_match_rate will not use it"))
    typer.echo(f"calibration: {path}")


@faces_app.command("verify")
def faces_verify(folder: Path = typer.Argument(..., help="Folder of <identity>/<photos>."),
                 recognizer: str = typer.Option("auto", help=HELP["recognizer"]),
                 json_out: Path = typer.Option(None, "--json")):
    """All genuine and impostor pairs: ROC-AUC, EER, threshold at 1% false-match rate, pair table."""
    from workbench import get_analyzer, save_verification
    from workbench import verify_recognizer as verify_folder

    summary, table = verify_folder(folder, get_analyzer(recognizer))
    for key, value in summary.items():
        if key != "skipped":
            typer.echo(f"{key:22} {value:.4f}" if isinstance(value, float) else f"{key:22} {value}")
    for note in summary["skipped"]:
        typer.echo(f"  skipped {note}")
    if json_out:
        for path in save_verification(summary, table, json_out):
            typer.echo(f"wrote {path}")


def main() -> None:
    # Runs last at exit: the interpreter's final collections then skip the millions of objects torch and
    # transformers leave (1.2 s of every command that loaded them, measured here); refcounting still frees.
    atexit.register(gc.freeze)
    try:
        app()
    except WorkbenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted: what was finished is kept (training keeps its last checkpoint, a run its images); "
                   "run the same command again to resume.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
