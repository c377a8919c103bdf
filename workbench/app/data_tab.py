"""Delete my data: everything of the signed-in user goes, on request (selfies, checks, likenesses,
runs, reports); the built tiny models are shared and stay."""

from __future__ import annotations

import shutil

import gradio as gr

from workbench import Settings

from .common import user_settings


def build(settings: Settings) -> None:
    with gr.Accordion("Delete my data", open=False):
        sure = gr.Checkbox(label="I understand: my selfies, likenesses, runs and reports are deleted for good.",
                           elem_id="delete-sure")
        button = gr.Button("Delete all my data", variant="stop", elem_id="delete-data")
        receipt = gr.Markdown(elem_id="delete-receipt")

    def wipe(confirmed: bool, request: gr.Request):
        if not confirmed:
            raise gr.Error("Tick the box first: this cannot be undone.")
        home = user_settings(settings, request).home
        files = [p for p in home.rglob("*") if p.is_file()]
        shutil.rmtree(home)
        return f"Deleted {len(files)} files. Nothing of yours is left in the workspace."

    button.click(wipe, sure, receipt)
