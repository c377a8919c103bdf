"""Selfies tab: upload 10-30 photos (or pick a bundled set), check them, read each photo's card and the
set verdict, remove photos and check again."""

from __future__ import annotations

import base64
import html
import io
import shutil
from pathlib import Path

import gradio as gr

from workbench import FLAG_PHRASES, check_selfies, list_images, load_image, resources

from .common import friendly, own, user_settings

SAMPLES = resources.samples()
MAX_UPLOADS = 60  # per check; the size of each file is capped by the server (launch(max_file_size=...))
COLOURS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}
STATUS_WORDS = {"pass": "Good", "warn": "Usable, see below", "fail": "Won't be used"}


def sample_sets() -> list[str]:
    return sorted(p.name for p in SAMPLES.iterdir() if p.is_dir() and not p.name.startswith("_")) if SAMPLES.is_dir() \
        else []


def unique_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (2)``, ``name (3)``... when taken: uploads never overwrite each other and
    keep the name the user knows."""
    target = folder / Path(name).name
    stem, suffix, n = target.stem, target.suffix, 2
    while target.exists():
        target = folder / f"{stem} ({n}){suffix}"
        n += 1
    return target


def _thumb(path: Path, photo) -> str:
    """A thumbnail with a box on each face (green: the one taken as you; red: the others). Never for a
    link or anything refused: a thumbnail must not show a file the set does not own."""
    if path.is_symlink() or not path.is_file() or "unreadable" in photo.flags:
        return ""
    try:
        image = load_image(path, max_side=512)
    except Exception:  # noqa: BLE001 - an unreadable photo gets a card without a picture
        return ""
    image.thumbnail((160, 160))
    if photo.faces and photo.size:
        from PIL import ImageDraw

        draw, scale = ImageDraw.Draw(image), image.width / photo.size[0] / photo.scale
        for index, face in enumerate(photo.faces):
            box = [v * scale for v in face.bbox]
            draw.rectangle(box, outline="#1a7f37" if index == 0 else "#cf222e", width=2)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return f"<img src='data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}' style='width:100%'>"


def cards(report) -> str:
    items = []
    for photo in report.photos:
        advice = "".join(f"<li>{html.escape(a)}</li>" for a in photo.advice)
        phrases = "".join(f"<div title='{html.escape(flag)}'>{html.escape(FLAG_PHRASES.get(flag, flag))}</div>"
                          for flag in photo.flags)
        items.append(
            f"<div class='photo-card' data-file='{html.escape(photo.file)}' style='border:1px solid #ccc;"
            f"border-radius:8px;padding:6px;width:180px'>{_thumb(report.folder / photo.file, photo)}"
            f"<div><b>{html.escape(photo.file)}</b> <span style='color:{COLOURS[photo.status]};font-weight:600'>"
            f"{STATUS_WORDS[photo.status]}</span></div><div style='font-size:13px;font-weight:600'>{phrases}</div>"
            f"<ul style='font-size:12px;padding-left:16px'>{advice}</ul></div>")
    return "<div style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(items) + "</div>"


def verdict_text(report) -> str:
    found = report.set
    lines = [f"### Verdict: {found['verdict'].replace('_', ' ')} — {found['usable']} of {found['count']} photos usable"]
    lines += [f"- {a}" for a in found["advice"]]
    if found["duplicates"]:
        lines.append("- Near-duplicates: " + "; ".join(", ".join(g) for g in found["duplicates"]))
    if found["intruders"]:
        others = ", ".join(f"{i['file']} ({i['score']:.2f})" for i in found["intruders"])
        lines.append(f"- Probably someone else: {others}")
    return "\n".join(lines)


def build(settings, shared: dict) -> dict:
    with gr.Tab("Selfies"):
        gr.Markdown("Upload 10–30 selfies (or pick a sample set) and check them before training.")
        with gr.Row():
            uploads = gr.File(label="Your selfies", file_count="multiple", type="filepath", elem_id="selfie-upload")
            sample = gr.Dropdown(sample_sets(), label="…or a bundled sample set", value=None)
        check_button = gr.Button("Check photos", variant="primary", elem_id="check-button")
        verdict = gr.Markdown(elem_id="verdict")
        photo_cards = gr.HTML(elem_id="photo-cards")
        with gr.Row():
            remove = gr.CheckboxGroup([], label="Remove these photos", elem_id="remove-photos")
            recheck = gr.Button("Remove selected and re-check")
        set_folder = gr.State(None)

    @friendly
    def check(files, sample_name, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        try:
            return _check(files, sample_name, request)
        finally:  # Gradio's temporary copy of someone's face goes, whether the check ran or was refused
            for upload in files or []:
                Path(upload).unlink(missing_ok=True)

    def _check(files, sample_name, request: gr.Request):
        user = user_settings(settings, request)
        if len(files or []) > MAX_UPLOADS:
            raise gr.Error(f"{len(files)} files: upload at most {MAX_UPLOADS} photos (10-30 is the right number).")
        if files and sample_name:
            raise gr.Error("You gave both uploaded photos and a sample set: clear one of them, so it is clear which "
                           "photos are checked.")
        if sample_name and sample_name not in sample_sets():
            raise gr.Error("Pick one of the listed sample sets.")
        sources = [Path(f) for f in files or []] or (list_images(SAMPLES / sample_name) if sample_name else [])
        if not sources:
            raise gr.Error("Upload some selfies or pick a sample set first.")
        folder = Path(user.home) / "selfie-sets" / "current"
        if files and not any(Path(f).is_file() for f in files) and list_images(folder):
            return _run(folder)  # checked before: the uploads are already the set (checking twice keeps it)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for source in sources:  # every file a user gives is kept, even three called 01.jpg
            shutil.copyfile(source, unique_name(folder, Path(source).name))
        return _run(folder)

    @friendly
    def drop(folder, names, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not folder:
            raise gr.Error("Check a set first.")
        user = user_settings(settings, request)
        folder = own(user, folder, "selfie-sets")
        present = {p.name for p in folder.iterdir() if p.is_file()}
        for name in names or []:
            if name in present:  # only files of this set, by their plain name: never a path
                (folder / name).unlink()
        return _run(folder)

    def _run(folder: Path):
        report = check_selfies(folder, out=folder.parent / "current-check", progress=True)
        names = [p.file for p in report.photos]
        return verdict_text(report), cards(report), gr.update(choices=names, value=[]), str(folder)

    outputs = [verdict, photo_cards, remove, set_folder]
    check_button.click(check, [uploads, sample], outputs)
    recheck.click(drop, [set_folder, remove], outputs)
    return {"set_folder": set_folder}
