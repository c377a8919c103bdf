"""Packs tab: pick a likeness and packs (with a preview of their prompts), samplers, steps and seeds;
generate with progress; a gallery with each image's FaceSim and parameters; download as a zip."""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr

from ..generate import SAMPLERS, generate
from ..metrics import score
from ..names import check_name
from ..packs import builtin_packs, get_pack
from .common import folders, friendly, own, user_settings


def _numbers(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in str(text).replace(",", " ").split()]
    except ValueError as exc:
        raise gr.Error(f"{what}: give whole numbers separated by commas, e.g. 4, 8") from exc


def preview(names: list[str]) -> str:
    lines = []
    for name in names or []:
        pack = get_pack(name)
        lines.append(f"**{pack.name}** — {pack.description}")
        lines += [f"- `{p.id}`: {p.prompt}" for p in pack.prompts]
    return "\n".join(lines) or "Pick one or more packs to see their prompts."


def captions(run_table, scores) -> list[tuple[str, str]]:
    facesim, label = {}, "FaceSim"
    if scores is not None and not scores.empty:
        # test photos when the likeness has them; else the training photos, and the caption says so
        for metric, name in (("test_facesim", "FaceSim"), ("train_facesim", "FaceSim vs training photos")):
            rows = scores[(scores.metric == metric) & scores.image_id.notna()]
            if rows["value"].notna().any():
                facesim, label = dict(zip(rows.image_id, rows.value, strict=True)), name
                break
    items = []
    for row in run_table.to_dict("records"):
        value = facesim.get(row["image_id"])
        shown = "no face" if value is None or value != value else f"{value:.2f}"
        items.append((row["path"], f"{label} {shown} · {row['pack']}/{row['prompt_id']} · {row['sampler']} · "
                                    f"{row['steps']} steps · seed {row['seed']}"))
    return items


def build(settings, shared: dict) -> dict:
    pack_names = sorted(builtin_packs())
    with gr.Tab("Packs"):
        with gr.Row():
            likeness = gr.Dropdown([], label="Likeness", elem_id="likeness-choice")
            refresh = gr.Button("Refresh likenesses", elem_id="refresh-likenesses")
        packs = gr.CheckboxGroup(pack_names, value=[pack_names[0]], label="Packs", elem_id="pack-choice")
        prompts = gr.Markdown(preview([pack_names[0]]))
        with gr.Row():
            samplers = gr.CheckboxGroup(sorted(SAMPLERS), value=["euler"], label="Samplers")
            steps = gr.Textbox(value="4", label="Steps (comma-separated)")
            seeds = gr.Textbox(value="0, 1", label="Seeds")
            per_pack = gr.Number(value=1, precision=0, label="Prompts per pack (0 = all)")
        generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
        status = gr.Markdown(elem_id="generate-status")
        gallery = gr.Gallery(label="Images", columns=4, elem_id="gallery")
        download = gr.File(label="Download (zip)")
    packs.change(preview, packs, prompts)

    def likenesses(request: gr.Request):
        found = folders(Path(user_settings(settings, request).home) / "likenesses", "likeness.json")
        return gr.update(choices=found, value=found[0] if found else None)

    @friendly
    def run(chosen, pack_list, sampler_list, step_text, seed_text, prompts_per_pack, request: gr.Request,
            progress=gr.Progress(track_tqdm=True)):
        if not chosen:
            raise gr.Error("Train a likeness first (Train tab), then press 'Refresh likenesses'.")
        if not pack_list or not sampler_list:
            raise gr.Error("Pick at least one pack and one sampler.")
        user = user_settings(settings, request)
        chosen = own(user, chosen, "likenesses")
        if set(pack_list) - set(builtin_packs()):
            raise gr.Error("Pick packs from the list.")
        out = Path(user.home) / "runs" / check_name(f"{chosen.name}-{'-'.join(pack_list)}", "run name")
        result = generate(chosen, pack_list, out, samplers=sampler_list, steps=_numbers(step_text, "Steps"),
                          seeds=_numbers(seed_text, "Seeds"), prompts_per_pack=int(prompts_per_pack) or None,
                          settings=user, progress=True)
        scores = score(result.path, clip_model=None, progress=True)
        archive = shutil.make_archive(str(out.parent / out.name), "zip", out)
        items = [(str(result.path / path), text) for path, text in captions(result.table, scores)]
        return f"{len(result.table)} images in `{result.path}`", items, archive

    refresh.click(likenesses, None, likeness)
    generate_button.click(run, [likeness, packs, samplers, steps, seeds, per_pack], [status, gallery, download])
    return {"refresh": refresh}
