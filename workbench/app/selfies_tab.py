"""Selfies tab: upload 10-30 photos (or pick a bundled set), check them, read each photo's card and the
set verdict, remove photos and check again."""

from __future__ import annotations

import base64
import html
import io
import shutil
from pathlib import Path

import gradio as gr

from workbench import FLAG_PHRASES, check_selfies, folder_lock, list_images, load_image, resources

from .common import friendly, own, person_of_request, user_settings
from .uploads import LEDGER

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


def verdict_text(report, refused: list[str] = ()) -> str:
    found = report.set
    photos = found.get("photos", found["count"])
    lines = [f"### Verdict: {found['verdict'].replace('_', ' ')} — {found['usable']} of {photos} photos usable"]
    lines += [f"- Not used: {r}" for r in refused]
    lines += [f"- {a}" for a in found["advice"]]
    if found["duplicates"]:
        lines.append("- Near-duplicates: " + "; ".join(", ".join(g) for g in found["duplicates"]))
    if found["intruders"]:
        others = ", ".join(f"{i['file']} (similarity {i['score']:.2f} to the rest, on a scale where the same person "
                           "scores about 0.5 or more)" for i in found["intruders"])
        lines.append(f"- Probably someone else: {others}")
    return "\n".join(lines)


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 // 10 else f"{size / 1024:.0f} KB"


def plan_set(files: list[str], made_from: dict[str, str | None], folder: Path, person: str, max_bytes: int):
    """What the set becomes from the upload box: (kept set files, new uploads, refused lines, uploads to
    delete). A file already in the set stays (checking twice keeps the set); one the person removed stays
    out; a new one must be this person's upload and small enough; anything else is refused alone."""
    kept, new, refused, spent = [], [], [], []
    for path in files:
        name = Path(path).name
        if path in made_from:
            in_set = made_from[path]
            if in_set and (folder / in_set).is_file():
                kept.append(in_set)
            elif in_set is not None:
                refused.append(f"{name}: no longer in the set; upload it again")
            continue  # None: removed from the set by the person; it stays out
        if LEDGER.owner(path) != person or not Path(path).is_file():
            refused.append(f"{name}: not a file you uploaded here; upload it again")
            continue
        size = Path(path).stat().st_size
        if size > max_bytes:
            refused.append(f"{name}: {megabytes(size)}, larger than the {megabytes(max_bytes)} a photo may be; "
                           "export it as a JPEG at phone resolution")
            spent.append(path)
            continue
        new.append(path)
    return kept, new, refused, spent


def build(settings, shared: dict) -> dict:
    max_bytes = int(shared.get("max_photo_bytes") or 25 * 2**20)
    with gr.Tab("Selfies"):
        gr.Markdown(f"Upload 10–30 selfies (or pick a sample set) and check them before training. Photos up to "
                    f"{megabytes(max_bytes)} each; a larger one is refused on its own.")
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
        made_from = gr.State({})  # upload path -> its file in the set (None: removed by the person); server-side

    @friendly
    def check(files, sample_name, sources, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        user, person = user_settings(settings, request), person_of_request(request)
        files = [str(f) for f in files or []]
        if len(files) > MAX_UPLOADS:
            raise gr.Error(f"{len(files)} files: upload at most {MAX_UPLOADS} photos (10-30 is the right number).")
        if files and sample_name:
            raise gr.Error("You gave both uploaded photos and a sample set: clear one of them, so it is clear which "
                           "photos are checked.")
        if sample_name and sample_name not in sample_sets():
            raise gr.Error("Pick one of the listed sample sets.")
        if not files and not sample_name:
            raise gr.Error("Upload some selfies or pick a sample set first.")
        folder = Path(user.home) / "selfie-sets" / "current"
        with folder_lock(folder.parent, wait=30):  # one check of this person's set at a time
            if sample_name:
                refused, sources = [], {}
                _replace_set(folder, [(p, p.name) for p in list_images(SAMPLES / sample_name)], [])
            else:
                sources = dict(sources or {})
                if set(sources.values()) - {None} and not folder.is_dir():
                    sources = {}  # the set was deleted (Delete my data): nothing of it can be kept
                kept, new, refused, spent = plan_set(files, sources, folder, person, max_bytes)
                if not kept and not new:
                    LEDGER.release(person, spent)
                    raise gr.Error("None of these files can be checked: " + "; ".join(refused[:5]))
                current = {p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()
                if new or set(kept) != current:  # the box changed: the set becomes what it shows
                    named = _replace_set(folder, [(folder / k, k) for k in kept],
                                         [(Path(p), Path(p).name) for p in new])
                    sources = {k: v for k, v in sources.items() if v is None or v in kept}
                    sources.update(zip(new, named, strict=True))
                LEDGER.release(person, new + spent)  # the app's copies are in the set; Gradio's go
        return (*_run(folder, refused), sources)

    @friendly
    def drop(folder, names, sources, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not folder:
            raise gr.Error("Check a set first.")
        user = user_settings(settings, request)
        folder = own(user, folder, "selfie-sets")
        present = {p.name for p in folder.iterdir() if p.is_file()}
        gone = [name for name in names or [] if name in present]  # only files of this set, by plain name
        for name in gone:
            (folder / name).unlink()
        sources = {k: (None if v in gone else v) for k, v in (sources or {}).items()}
        return (*_run(folder, []), sources)

    def _run(folder: Path, refused: list[str]):
        report = check_selfies(folder, out=folder.parent / "current-check", progress=True)
        names = [p.file for p in report.photos]
        return verdict_text(report, refused), cards(report), gr.update(choices=names, value=[]), str(folder)

    outputs = [verdict, photo_cards, remove, set_folder, made_from]
    check_button.click(check, [uploads, sample, made_from], outputs, concurrency_limit=2)
    recheck.click(drop, [set_folder, remove, made_from], outputs, concurrency_limit=2)
    return {"set_folder": set_folder, "cleared_on_delete": [verdict, photo_cards, set_folder, made_from]}


def _replace_set(folder: Path, kept: list[tuple[Path, str]], new: list[tuple[Path, str]]) -> list[str]:
    """Make ``folder`` hold exactly ``kept`` (same names) and ``new`` (names kept unique), built beside it and
    swapped in, so a failure half-way leaves the previous set whole. Returns the names the new files got."""
    staging, old = folder.with_name(".current.new"), folder.with_name(".current.old")
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    for source, name in kept:
        shutil.copyfile(source, staging / name)
    named = []
    for source, name in new:  # every file a person gives is kept, even three called 01.jpg
        target = unique_name(staging, name)
        shutil.copyfile(source, target)
        named.append(target.name)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return named
