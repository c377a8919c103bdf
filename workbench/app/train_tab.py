"""Train tab: family (only those whose weights are here, licence shown), main options, progress with
loss and ETA (the trainer's tqdm bar), the checkpoint identity curve, cancel."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure

from ..likeness import train_likeness  # noqa: E402
from ..models import FAMILIES, weights_status  # noqa: E402
from ..names import check_name, inside
from .common import friendly, own, user_settings  # noqa: E402


def available_families(settings) -> list[str]:
    """Tiny families always; real ones when their weights are in the local cache."""
    return [name for name, fam in FAMILIES.items()
            if fam.built_locally or weights_status(fam, settings).startswith("in the")]


def curve_plot(curve: list[dict]):
    frame = pd.DataFrame(curve)
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    for column, label in (("validation_facesim", "validation FaceSim (chooses the step)"),
                          ("nearest_train_facesim", "nearest training photo")):
        if column in frame and frame[column].notna().any():
            ax.plot(frame["step"], frame[column], marker="o", label=label)
    if not ax.lines:
        ax.text(0.5, 0.5, "no faces in the probe images yet\n(tiny models draw noise)", ha="center", va="center",
                transform=ax.transAxes)
    else:
        ax.legend()
    ax.set_xlabel("step")
    ax.set_title("identity per checkpoint")
    fig.tight_layout()
    return fig


def build(settings, shared: dict) -> dict:
    families = available_families(settings)
    with gr.Tab("Train"):
        with gr.Row():
            family = gr.Dropdown(families, value=families[0], label="Model family", elem_id="family")
            licence = gr.Markdown(f"Licence: {FAMILIES[families[0]].licence}")
        with gr.Row():
            steps = gr.Number(value=20, precision=0, label="Steps (real families: leave 0 for the default)",
                              elem_id="train-steps")
            rank = gr.Number(value=16, precision=0, label="LoRA rank")
            class_word = gr.Dropdown(["person", "woman", "man"], value="person", label="Class word")
            name = gr.Textbox(value="me", label="Likeness name", elem_id="likeness-name")
        with gr.Row():
            train_button = gr.Button("Train likeness", variant="primary", elem_id="train-button")
            cancel = gr.Button("Cancel")
        summary = gr.Markdown(elem_id="train-summary")
        curve = gr.Plot(label="Checkpoint curve")
    family.change(lambda f: f"Licence: {FAMILIES[f].licence}", family, licence)

    @friendly
    def train(folder, fam, n_steps, lora_rank, word, likeness_name, request: gr.Request,
              progress=gr.Progress(track_tqdm=True)):
        if not folder:
            raise gr.Error("Check a selfie set in the Selfies tab first.")
        user = user_settings(settings, request)
        name = check_name((likeness_name or "me").strip(), "likeness name")
        out = inside(Path(user.home) / "likenesses", Path(user.home) / "likenesses" / name)
        own(user, folder, "selfie-sets")
        options = {"rank": int(lora_rank), "class_word": word}
        if n_steps:
            options["steps"] = int(n_steps)
        likeness = train_likeness(folder, out, family=fam, settings=user, progress=True, **options)
        return f"```\n{likeness.summary()}\n```", curve_plot(likeness.card["curve"])

    event = train_button.click(train, [shared["set_folder"], family, steps, rank, class_word, name], [summary, curve])
    cancel.click(None, cancels=[event])
    return {}
