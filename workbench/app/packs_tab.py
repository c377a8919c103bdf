"""Packs tab: pick a likeness and packs (with a preview of their prompts), samplers, steps and seeds;
generate with progress; a gallery with each image's FaceSim and parameters; download as a zip."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from workbench import (
    CARD_FILE,
    FAMILIES,
    IMAGES,
    LIMITS,
    SAMPLERS,
    Jobs,
    Likeness,
    builtin_packs,
    check_limit,
    check_name,
    generate,
    generation_conflicts,
    get_pack,
    read_favourites,
    read_scores,
    score,
    toggle_favourite,
)

from .common import describe, folders, friendly, keep_choice, names_in, own, user_settings
from .words import NOISE_BANNER, SAMPLER_HELP, SEEDS_HELP, STEPS_HELP


def _numbers(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in str(text).replace(",", " ").split()]
    except ValueError as exc:
        raise gr.Error(f"{what}: give whole numbers separated by commas, e.g. 4, 8") from exc


def grid_numbers(step_text: str, seed_text: str) -> tuple[list[int], list[int]]:
    """The steps and seeds typed in, each within the CLI's bounds: the same words beside the controls and at
    the click."""
    steps_list, seed_list = _numbers(step_text, "Steps"), _numbers(seed_text, "Seeds")
    for value in steps_list:
        check_limit("inference_steps", value, "Steps")
    for value in seed_list:
        check_limit("seed", value, "Seed")
    check_limit("seeds_per_job", len(seed_list) or 1, "Number of seeds")
    return steps_list, seed_list


def grid_size(packs: list[str], samplers: list[str], steps: list[int], seeds: list[int], per_pack: int) -> int:
    prompts = sum(min(per_pack or len(get_pack(p).prompts), len(get_pack(p).prompts)) for p in packs)
    return prompts * len(samplers) * len(steps) * len(seeds)


def generation_estimate(home: Path, family: str, steps: list[int], images_per_step_count: int) -> str:
    """Time for the grid at the pace (seconds per denoising step) of this workspace's last run of ``family``."""
    from workbench import read_images

    pace = None
    for folder in folders(home / "runs", IMAGES):
        try:
            table = read_images(folder)
        except Exception:  # noqa: BLE001 - an unreadable run gives no pace
            continue
        table = table[(table.get("family") == family) & table["seconds"].notna()] if "seconds" in table else table[:0]
        if len(table):
            pace = float((table["seconds"] / table["steps"]).median())
            break
    if pace is None:
        return f"No time estimate yet for {family}: the first run measures it."
    seconds = pace * sum(steps) * images_per_step_count
    text = f"{max(1, round(seconds))} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    return f"About {text} at the pace of your last {family} run."


def preview(names: list[str]) -> str:
    lines = []
    for name in names or []:
        pack = get_pack(name)
        lines.append(f"**{pack.name}** — {pack.description}")
        lines += [f"- {p.id}: {p.prompt.replace('{subject}', '[you]')}" for p in pack.prompts]
    return "\n".join(lines) or "Pick one or more packs to see their prompts."


def match_label(value: float | None, threshold: float | None) -> str:
    """A similarity in words, at the recognizer's match threshold (calibrated, or its published operating
    point), with the number on that scale."""
    if value is None or value != value:
        return "no face found"
    if threshold is None:
        return f"similarity {value:.2f}"
    words = ("likely the same person" if value >= threshold else
             "looks like someone else" if value < threshold - 0.15 else "unsure")
    return f"{words} ({value:.2f}; {threshold:.2f} or more is a match)"


def captions(run_table, scores, threshold: float | None = None,
             favourites: list[str] | None = None) -> list[tuple[str, str]]:
    facesim, against = {}, ""
    if scores is not None and not scores.empty:
        # test photos when the likeness has them; else the training photos, and the caption says so
        for metric, name in (("test_facesim", ""), ("train_facesim", " (vs the training photos)")):
            rows = scores[(scores.metric == metric) & scores.image_id.notna()]
            if rows["value"].notna().any():
                facesim, against = dict(zip(rows.image_id, rows.value, strict=True)), name
                break
    items = []
    for row in run_table.to_dict("records"):
        value = facesim.get(row["image_id"])
        settings_text = f"{row['sampler']}, {row['steps']} steps · seed {row['seed']}"
        star = "★ " if row["image_id"] in (favourites or ()) else ""
        items.append((row["path"], f"{star}Likeness: {match_label(value, threshold)}{against} · {row['pack']} / "
                                    f"{row['prompt_id']} · {settings_text}"))
    return items


DOWNLOADS = "downloads"  # inside the run: a delete of the run takes its zips with it


def downloads(run_path: Path) -> tuple[str, str]:
    """Two zips: the images only (what product staff share), and the data behind them (tables, manifest)."""
    import zipfile

    folder = run_path / DOWNLOADS
    folder.mkdir(exist_ok=True)
    images, data = folder / f"{run_path.name}-images.zip", folder / f"{run_path.name}-data.zip"
    with zipfile.ZipFile(images, "w") as pictures, zipfile.ZipFile(data, "w") as tables:
        for path in sorted(run_path.rglob("*")):
            inner = path.relative_to(run_path)
            if path.is_file() and not path.is_symlink() and inner.parts[0] != DOWNLOADS and not any(
                    part.startswith(".") for part in inner.parts):
                (pictures if path.suffix == ".png" else tables).write(path, inner)
    return str(images), str(data)


def favourites_zip(run_path: Path) -> str | None:
    """The starred images only, in the order they were starred; None when nothing is starred."""
    import zipfile

    from workbench import GenerationRun

    starred = read_favourites(run_path)
    if not starred:
        return None
    table = GenerationRun.load(run_path).table
    paths = dict(zip(table.image_id, table.path, strict=True))
    (run_path / DOWNLOADS).mkdir(exist_ok=True)
    out = run_path / DOWNLOADS / f"{run_path.name}-favourites.zip"
    with zipfile.ZipFile(out, "w") as pictures:
        for number, image_id in enumerate(starred, 1):
            path = run_path / paths[image_id]
            pictures.write(path, f"{number:02d}-{path.name}")
    return str(out)


def gallery_items(run_path: Path, user) -> list[tuple[str, str]]:
    """The run's images with captions (match label, pack, prompt, settings; a star on favourites)."""
    from workbench import GenerationRun, get_analyzer, match_threshold

    table = GenerationRun.load(run_path).table
    threshold, _ = match_threshold(get_analyzer(), home=user.home)
    return [(str(run_path / path), text)
            for path, text in captions(table, read_scores(run_path), threshold, read_favourites(run_path))]


def build(settings, shared: dict) -> dict:
    pack_names = sorted(builtin_packs())
    with gr.Tab("Packs") as tab:
        with gr.Row():
            likeness = gr.Dropdown([], label="Likeness", elem_id="likeness-choice")
            refresh = gr.Button("Refresh likenesses", elem_id="refresh-likenesses")
        packs = gr.CheckboxGroup(pack_names, value=[pack_names[0]], label="Packs", elem_id="pack-choice")
        prompts = gr.Markdown(preview([pack_names[0]]))
        with gr.Row():
            samplers = gr.CheckboxGroup(sorted(SAMPLERS), value=["euler"], label="Samplers", info=SAMPLER_HELP)
            steps = gr.Textbox(value="4", label="Steps (comma-separated)", elem_id="generate-steps",
                               info=f"{STEPS_HELP} Each {LIMITS['inference_steps'].describe()}.")
            seeds = gr.Textbox(value="0, 1", label="Seeds", info=SEEDS_HELP)
            per_pack = gr.Number(value=1, precision=0, minimum=0, maximum=LIMITS["prompts_per_pack"].high,
                                 label="Prompts per pack (0 = all)")
            run_name = gr.Textbox(label="Run name (optional)", elem_id="run-name",
                                  placeholder="default: <likeness>-<packs>; the same name adds to that run",
                                  info="Images with new settings are added to the run; a new name starts a new run.")
        grid_note = gr.Markdown(elem_id="generate-estimate")
        with gr.Row():
            generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            cancel = gr.Button("Cancel", elem_id="generate-cancel")
        status = gr.Markdown(elem_id="generate-status")
        banner = gr.Markdown(NOISE_BANNER, visible=False, elem_id="packs-banner")
        gallery = gr.Gallery(label="Images", columns=4, elem_id="gallery", buttons=["download", "fullscreen"])
        with gr.Row():
            download = gr.File(label="Images (zip)", elem_id="download-images")
            data = gr.File(label="The data behind them (tables, manifest; zip)")
        with gr.Row():
            star = gr.Button("★ Favourite / unfavourite the selected image", elem_id="favourite-button")
            favourites = gr.File(label="Favourites (zip)", elem_id="download-favourites")
        job_id, shown, run_state, selected = gr.State(None), gr.State(None), gr.State(None), gr.State(None)
        timer = gr.Timer(1.0)
    packs.change(preview, packs, prompts)

    def likenesses(current, request: gr.Request):
        return keep_choice(names_in(Path(user_settings(settings, request).home) / "likenesses", CARD_FILE), current)

    def first_likenesses(request: gr.Request):
        return likenesses(None, request)

    @friendly
    def start(chosen, pack_list, sampler_list, step_text, seed_text, prompts_per_pack, name, request: gr.Request):
        if not chosen:
            raise gr.Error("Train a likeness first (Train tab), then press 'Refresh likenesses'.")
        if not pack_list or not sampler_list:
            raise gr.Error("Pick at least one pack and one sampler.")
        user = user_settings(settings, request)
        chosen = own(user, chosen, "likenesses")
        if set(pack_list) - set(builtin_packs()):
            raise gr.Error("Pick packs from the list.")
        steps_list, seed_list = grid_numbers(step_text, seed_text)
        if not steps_list:
            raise gr.Error("Steps: whole numbers, e.g. 20, 30.")
        if not seed_list:
            raise gr.Error("Seeds: at least one whole number, e.g. 0, 1.")
        out = Path(user.home) / "runs" / check_name((name or "").strip() or f"{chosen.name}-{'-'.join(pack_list)}",
                                                    "run name")
        # the CLI's checks, at the click: bounds of every number, and a run name that holds another likeness's run
        if generation_conflicts(out, chosen, pack_list, samplers=sampler_list, steps=steps_list, seeds=seed_list,
                                prompts_per_pack=int(prompts_per_pack or 0) or None):
            raise gr.Error(f"A run called '{out.name}' already holds images of another likeness or settings. Give "
                           "this one another run name.")

        def work(context):
            result = generate(chosen, pack_list, out, samplers=sampler_list, steps=steps_list, seeds=seed_list,
                              prompts_per_pack=int(prompts_per_pack or 0) or None, settings=user, progress=False,
                              callback=context.step)
            score(result.path, clip_model=None, progress=False, settings=user)
            return {"run": str(result.path), "images": len(result.table)}

        record = Jobs(user.home).start("generate", f"Generating {', '.join(pack_list)} with '{chosen.name}' into run "
                                       f"'{out.name}'", work, params={"run": out.name}, writes=[out], pausable=True)
        tiny = is_test_likeness(chosen)
        # a new job: the previous run's images and zips go until this one's arrive
        return (record.id, f"{record.title}: queued", [], None, None, None, None, gr.update(visible=tiny))

    def poll(current, already, request: gr.Request):
        skip = gr.skip()
        if not current or already == current:  # nothing asked, or its outcome is on screen: it stays
            return skip, skip, skip, skip, skip, skip, skip
        user = user_settings(settings, request)
        record = Jobs(user.home).get(current)
        if record is None or not record.finished:
            return (describe(record) if record else ""), skip, skip, skip, skip, skip, skip
        run_path = own(user, record.params["run"], "runs") if record.params.get("run") else None
        if record.state != "done":  # cancelled or failed: what it wrote before it stopped is kept, and shown
            if run_path is None or not (run_path / IMAGES).is_file():
                return describe(record) + " · no image was finished", skip, skip, skip, skip, current, skip
            items = gallery_items(run_path, user)
            return (f"{describe(record)} · the {len(items)} images finished before it stopped are kept in run "
                    f"'{run_path.name}'; generate again with the same run name to finish it", items, skip, skip,
                    skip, current, run_path.name)
        run_path = Path(record.result["run"])
        items = gallery_items(run_path, user)
        images_zip, data_zip = downloads(run_path)
        done = f"{describe(record)} · {len(items)} images in run '{run_path.name}' (earlier images kept)"
        return done, items, images_zip, data_zip, favourites_zip(run_path), current, run_path.name

    @friendly
    def check_grid_words(chosen, pack_list, sampler_list, step_text, seed_text, prompts_per_pack,
                         request: gr.Request):
        """Beside the controls, before anything starts: a number out of bounds, else the grid and its time."""
        try:
            steps_list, seed_list = grid_numbers(step_text, seed_text)
        except Exception as exc:  # noqa: BLE001 - said beside the control; the click refuses it again
            return f"⚠ {getattr(exc, 'message', None) or exc}"
        if not (chosen and pack_list and sampler_list and steps_list and seed_list):
            return ""
        per_step = grid_size(pack_list, sampler_list, [1], seed_list, int(prompts_per_pack or 0))
        total = per_step * len(steps_list)
        user = user_settings(settings, request)
        try:
            family = Likeness.load(own(user, chosen, "likenesses")).card["family"]
        except Exception:  # noqa: BLE001 - a likeness that cannot be read is refused at the click
            return f"{total} images."
        return f"{total} images. " + generation_estimate(Path(user.home), family, steps_list, per_step)

    def is_test_likeness(chosen: Path) -> bool:
        try:
            family = Likeness.load(chosen).card["family"]
        except Exception:  # noqa: BLE001
            return False
        return family in FAMILIES and FAMILIES[family].random_weights

    def pick(event: gr.SelectData):
        return event.index

    @friendly
    def favourite(run_path, index, request: gr.Request):
        if not run_path or index is None:
            raise gr.Error("Click an image in the gallery first, then press the star.")
        user = user_settings(settings, request)
        run_path = own(user, run_path, "runs")
        from workbench import GenerationRun

        image_id = GenerationRun.load(run_path).table.image_id.iloc[int(index)]
        starred = toggle_favourite(run_path, image_id)
        note = f"{'★ starred' if starred else 'unstarred'}: image {int(index) + 1} of run '{run_path.name}'"
        return note, gallery_items(run_path, user), favourites_zip(run_path)

    def stop(current, request: gr.Request):
        record = Jobs(user_settings(settings, request).home).cancel(current) if current else None
        return describe(record) if record else "Nothing is generating."

    def reattach(request: gr.Request):
        record = Jobs(user_settings(settings, request).home).latest_active("generate")
        return record.id if record else None

    refresh.click(likenesses, likeness, likeness)
    tab.select(likenesses, likeness, likeness)  # a likeness trained in the Train tab is offered when this opens
    grid_inputs = [likeness, packs, samplers, steps, seeds, per_pack]
    for control in grid_inputs:
        control.change(check_grid_words, grid_inputs, grid_note)
    generate_button.click(start, [likeness, packs, samplers, steps, seeds, per_pack, run_name],
                          [job_id, status, gallery, download, data, favourites, run_state, banner])
    cancel.click(stop, job_id, status)
    timer.tick(poll, [job_id, shown], [status, gallery, download, data, favourites, shown, run_state])
    gallery.select(pick, None, selected)
    star.click(favourite, [run_state, selected], [status, gallery, favourites])
    return {"refresh": refresh, "load": [(reattach, [job_id]), (first_likenesses, [likeness])],
            "cleared_on_delete": [status, gallery, download, data, favourites, grid_note]}
