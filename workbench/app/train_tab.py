"""Train tab: family (only those whose weights are here, licence shown), main options, progress with
loss and ETA (the trainer's tqdm bar), the checkpoint identity curve, cancel."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd
from matplotlib.figure import Figure

from workbench import (
    FAMILIES,
    FLAG_PHRASES,
    LIMITS,
    Jobs,
    Likeness,
    check_limit,
    check_name,
    inside,
    read_check,
    train_likeness,
    training_conflicts,
    weights_status,
)

from .common import bounded, describe, folders, friendly, own, user_settings


def available_families(settings) -> list[str]:
    """Tiny families always; the real-size random ones on a GPU (minutes per step on a CPU); real ones
    when their weights are in the local cache."""
    gpu = settings.resolved_device().startswith("cuda")
    return [name for name, fam in FAMILIES.items()
            if fam.tiny or (fam.realsize and gpu) or (not fam.built_locally and
                                                       weights_status(fam, settings).startswith("in the"))]


def curve_plot(curve: list[dict]):
    frame = pd.DataFrame(curve)
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    for column, label in (("validation_facesim", "looks like the held-back photos (chooses the step)"),
                          ("nearest_train_facesim", "closest to one training photo")):
        if column in frame and frame[column].notna().any():
            ax.plot(frame["step"], frame[column], marker="o", label=label)
    if not ax.lines:
        ax.text(0.5, 0.5, "no faces in the probe images yet\n(tiny models draw noise)", ha="center", va="center",
                transform=ax.transAxes)
    else:
        ax.legend()
    ax.set_xlabel("training step")
    ax.set_ylabel("similarity")
    ax.set_title("likeness at each checkpoint")
    fig.tight_layout()
    return fig


FAMILY_HELP = ("The base model the likeness is trained on. tiny-* families have random weights (their images "
               "are noise): they check the machinery in seconds on a CPU.")
CLASS_HELP = "What the person is, in the prompt: 'photo of ohwx woman'. 'person' is a safe default."


def set_status(folder: str | None) -> tuple[str, list[str]]:
    """The verdict of the checked set and its problems in words (from the Selfies tab's saved check)."""
    if not folder:
        return "none", []
    found = read_check(Path(folder).parent / "current-check")
    if found is None:
        return "unknown", []
    problems = [f"{p['file']}: {', '.join(FLAG_PHRASES.get(f, f).lower() for f in p['flags'])}"
                for p in found.get("photos", []) if p.get("status") == "fail"]
    return found.get("set", {}).get("verdict", "unknown"), problems + found.get("set", {}).get("advice", [])


def likeness_words(likeness) -> str:
    """What a person needs to know about a finished likeness, in words (no paths, flags or settings codes)."""
    card = likeness.card
    steps, chosen = card["config"]["steps"], card["chosen_step"]
    train, validation, test = (likeness.split(g) for g in ("train", "validation", "test"))
    family = FAMILIES.get(card["family"])
    model = f"{card['family']}" + (" (a test model: its images are noise)" if family and family.random_weights
                                   else "")
    why = ("it looked most like the photos held back to choose it" if card["selection_reason"].startswith("best")
           else "no face appeared in the check images, so the last step is kept")
    lines = [f"### Likeness '{likeness.path.name}' is ready",
             f"- Learned from {len(train)} of your photos in {steps} steps, on {model}.",
             f"- Kept the version after step {chosen} of {steps}: {why}.",
             f"- {len(validation)} photo(s) were held back to choose it; "
             + (f"{len(test)} photo(s) are kept unseen to score its images fairly."
                if test else "none is kept unseen, so its scores compare with the training photos (less fair); "
                "photos from another day or place fix that.")]
    if likeness.test_shares_shoot_with_train:
        lines.append("- The unseen photos come from the same shoot as training photos, so scores read a little high.")
    seconds = likeness.timings().get("likeness_seconds")
    if seconds is not None:
        lines.append(f"- Training took about {max(1, round(seconds))} s.")
    return "\n".join(lines)


def training_estimate(home: Path, family: str, steps: int | None) -> str:
    """Time for ``steps`` at the pace this workspace's last likeness of ``family`` trained, when there is one."""
    from workbench import CARD_FILE

    if not steps:
        return ""
    paces = []
    for folder in folders(home / "likenesses", CARD_FILE):
        try:
            found = Likeness.load(folder)
        except Exception:  # noqa: BLE001 - an unreadable likeness gives no pace
            continue
        if found.card.get("family") == family and (pace := found.timings().get("seconds_per_step")):
            paces.append(pace)
    if not paces:
        return f"No time estimate yet for {family}: the first training measures it."
    seconds = paces[0] * steps * 1.2  # the checkpoint images add about a fifth
    text = f"{max(1, round(seconds))} s" if seconds < 120 else f"{seconds / 60:.0f} min"
    return f"About {text} for {steps} steps, at the pace of your last {family} training."


def existing_conflict(out: Path, selfies: Path, family: str, options: dict) -> str | None:
    """Why ``out`` cannot take this training (it holds a likeness of other photos or settings), in plain
    words; None when it may be resumed or is new. The same check as ``train_likeness``'s refusal."""
    differences = training_conflicts(out, selfies, family, **options)
    if not differences:
        return None
    return (f"A likeness called '{out.name}' already exists, made from {'; '.join(differences)}. Give the new one "
            "another name, or train with the same photos and settings to resume it.")


def build(settings, shared: dict) -> dict:
    families = available_families(settings)
    with gr.Tab("Train"):
        with gr.Row():
            family = gr.Dropdown(families, value=families[0], label="Model family", info=FAMILY_HELP,
                                 elem_id="family")
            licence = gr.Markdown(f"Licence: {FAMILIES[families[0]].licence}")
        with gr.Row():
            name = gr.Textbox(value="me", label="Likeness name", info="Letters, digits, '-', '_' or '.'; a new name "
                              "makes a new likeness", elem_id="likeness-name")
            class_word = gr.Dropdown(["person", "woman", "man"], value="person", label="Class word", info=CLASS_HELP)
            steps = gr.Number(value=20, precision=0, **bounded("train_steps"), label="Training steps",
                              info="More steps learn the face better, up to a point; 20 checks the machinery on "
                                   "tiny models, real models default to 80 per photo (400-1200).",
                              elem_id="train-steps")
        estimate = gr.Markdown(elem_id="train-estimate")
        with gr.Accordion("Advanced", open=False):
            rank = gr.Number(value=16, precision=0, **bounded("rank"), label="LoRA rank",
                             info=f"Size of the personal model; 16 is the common choice for faces "
                                  f"({LIMITS['rank'].describe()}).")
        anyway = gr.Checkbox(False, label="Train even though the set is not ready", elem_id="train-anyway")
        with gr.Row():
            train_button = gr.Button("Train likeness", variant="primary", elem_id="train-button")
            cancel = gr.Button("Cancel", elem_id="train-cancel")
        status = gr.Markdown(elem_id="train-status")
        summary = gr.Markdown(elem_id="train-summary")
        curve = gr.Plot(label="Checkpoint curve")
        job_id = gr.State(None)
        shown = gr.State(None)  # the job whose result is on screen
        timer = gr.Timer(1.0)
    family.change(lambda f: f"Licence: {FAMILIES[f].licence}", family, licence)

    @friendly
    def start(folder, fam, n_steps, lora_rank, word, likeness_name, train_anyway, request: gr.Request):
        if not folder:
            raise gr.Error("Check a selfie set in the Selfies tab first.")
        user = user_settings(settings, request)
        folder = own(user, folder, "selfie-sets")
        if n_steps is None or lora_rank is None:
            raise gr.Error("Give the training steps and the LoRA rank.")
        check_limit("train_steps", n_steps, "Training steps")  # the CLI's bounds, refused at the click
        check_limit("rank", lora_rank, "LoRA rank")
        verdict, problems = set_status(str(folder))
        if verdict == "not_ready" and not train_anyway:
            raise gr.Error("The set is not ready: " + "; ".join(problems[:6]) + ". Fix the photos, or tick 'Train "
                           "even though the set is not ready'.")
        if not (likeness_name or "").strip():
            raise gr.Error("Give the likeness a name (for example your first name).")
        name = check_name(likeness_name.strip(), "likeness name")
        out = inside(Path(user.home) / "likenesses", Path(user.home) / "likenesses" / name)
        options = {"rank": int(lora_rank), "class_word": word, "steps": int(n_steps)}
        conflict = existing_conflict(out, folder, fam, options)
        if conflict:
            raise gr.Error(conflict)

        def work(context):
            likeness = train_likeness(folder, out, family=fam, settings=user, progress=False, callback=context.step,
                                      **options)
            return {"likeness": str(likeness.path)}

        record = Jobs(user.home).start("train", f"Training '{name}'", work, {"family": fam, **options}, writes=[out],
                                       pausable=True)
        # a new training: the previous likeness's card and curve go until this one's arrive
        return record.id, f"Training '{name}': queued", "", None, None

    def poll(current, already, request: gr.Request):
        if not current:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        record = Jobs(user_settings(settings, request).home).get(current)
        if record is None:
            return "", gr.skip(), gr.skip(), gr.skip()
        if already == current:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()  # its outcome is on screen: it stays
        if not record.finished:
            return describe(record), gr.skip(), gr.skip(), gr.skip()
        if record.state != "done":
            kept = (" It keeps its last checkpoint: train again with the same name, photos and settings to go on."
                    if record.kind == "train" and record.state in {"cancelled", "interrupted"} else "")
            return describe(record) + kept, "", None, current
        likeness = Likeness.load(record.result["likeness"])
        return describe(record), likeness_words(likeness), curve_plot(likeness.card["curve"]), current

    def stop(current, request: gr.Request):
        if not current:
            return "Nothing is training."
        record = Jobs(user_settings(settings, request).home).cancel(current)
        return describe(record) if record else ""

    def reattach(request: gr.Request):
        """After a reload, pick up the training still running (or queued) for this user."""
        record = Jobs(user_settings(settings, request).home).latest_active("train")
        return record.id if record else None

    @friendly
    def estimate_time(fam, n_steps, request: gr.Request):
        if n_steps is None:
            return ""
        try:
            check_limit("train_steps", n_steps, "Training steps")
        except Exception as exc:  # noqa: BLE001 - said beside the control, refused again at the click
            return f"⚠ {exc}"
        return training_estimate(Path(user_settings(settings, request).home), fam, int(n_steps))

    steps.change(estimate_time, [family, steps], estimate)
    family.change(estimate_time, [family, steps], estimate)
    train_button.click(start, [shared["set_folder"], family, steps, rank, class_word, name, anyway],
                       [job_id, status, summary, curve, shown])
    cancel.click(stop, job_id, status)
    timer.tick(poll, [job_id, shown], [status, summary, curve, shown])
    return {"load": [(reattach, [job_id])], "cleared_on_delete": [status, summary, curve, estimate]}
