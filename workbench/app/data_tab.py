"""Delete my data: everything of the signed-in user goes, on request (selfies, checks, likenesses, runs,
reports, jobs, downloads), their running jobs stopped first, and the copies the app handed to Gradio (uploads,
zips, gallery images) removed from its temporary folder; the built tiny models are shared and stay."""

from __future__ import annotations

import gradio as gr

from workbench import Settings
from workbench import wipe_data as wipe

from .common import friendly, gradio_copies, person_of_request, user_settings
from .uploads import LEDGER


def build(settings: Settings, shared: dict) -> dict:
    with gr.Accordion("Delete my data", open=False):
        sure = gr.Checkbox(label="I understand: my selfies, likenesses, runs and reports are deleted for good.",
                           elem_id="delete-sure")
        button = gr.Button("Delete all my data", variant="stop", elem_id="delete-data")
        receipt = gr.Markdown(elem_id="delete-receipt")

    cleared = list(shared["cleared_on_delete"])  # every tab's results: nothing of the person stays on screen

    @friendly
    def delete_all(confirmed: bool, request: gr.Request, progress=gr.Progress()):
        if not confirmed:
            raise gr.Error("Tick the box first: this cannot be undone.")
        home, person = user_settings(settings, request).home, person_of_request(request)
        progress(0, desc="Stopping your jobs and deleting your files")
        done = wipe(home, copies_of=lambda files: [*LEDGER.of(person), *gradio_copies(files)])
        LEDGER.release(person, LEDGER.of(person))
        stopped = f" Stopped {len(done.cancelled_jobs)} running job(s) first." if done.cancelled_jobs else ""
        if done.skipped:
            words = (f"Deleted {len(done.removed_files)} files.{stopped} {len(done.skipped)} item(s) could not be "
                     "deleted because something still writes them; try again in a minute.")
        else:
            words = f"Deleted {len(done.removed_files)} files.{stopped} Nothing of yours is left in the workspace."
        return words, *[None] * len(cleared)

    button.click(delete_all, sure, [receipt, *cleared])
    return {}
