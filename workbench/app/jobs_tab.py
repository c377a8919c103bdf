"""Jobs tab: every job of this workspace (train, generate, score, suite), newest first, with its state
and progress; pick one to read its log and result, or cancel it. Refreshes itself while open."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from workbench import Jobs

from .common import describe, friendly, no_paths, user_settings

COLUMNS = ["started", "job", "kind", "state", "progress"]
KINDS = {"train": "training", "generate": "images", "score": "scoring", "suite": "QA suite"}


def progress_text(record) -> str:
    progress = record.progress
    if not progress.get("total"):
        return "—"
    text = f"{progress.get('done', 0)}/{progress['total']} {progress.get('unit', '')}s".strip()
    if progress.get("eta_seconds") is not None and record.state == "running":
        text += f", about {max(1, round(progress['eta_seconds']))} s left"
    return text


def job_table(records) -> pd.DataFrame:
    return pd.DataFrame([{"started": r.created.replace("T", " ")[:19], "job": r.title,
                          "kind": KINDS.get(r.kind, r.kind), "state": r.state, "progress": progress_text(r)}
                         for r in records], columns=COLUMNS)


def details(record) -> str:
    """What a person needs: the state line, the result by name (never a server path), the last log lines."""
    if record is None:
        return "No job picked."
    lines = [f"**{describe(record)}**"]
    for key, value in record.result.items():
        if not isinstance(value, str | int | float | bool):
            continue  # tables belong to the tab that made the job
        shown = Path(value).name if isinstance(value, str) and ("/" in value or "\\" in value) else value
        lines.append(f"- {key}: {shown}")
    if record.state == "interrupted":
        lines.append("The app stopped while this job ran; start the same work again and it resumes from its "
                     "last checkpoint.")
    if record.log:
        lines.append("```\n" + no_paths("\n".join(record.log[-15:]))[-3000:] + "\n```")
    return "\n".join(lines)


def build(settings, shared: dict) -> dict:
    with gr.Tab("Jobs"):
        gr.Markdown("Everything you started, newest first. Any tab reattaches to its running job after a reload.")
        table = gr.Dataframe(value=job_table([]), interactive=False, elem_id="jobs-table", wrap=True)
        with gr.Row():
            choice = gr.Dropdown([], label="Job", elem_id="job-choice")
            cancel = gr.Button("Cancel this job", elem_id="job-cancel")
        detail = gr.Markdown(elem_id="job-detail")
        known = gr.State([])
        timer = gr.Timer(2.0)

    def listing(current, ids, request: gr.Request):
        records = Jobs(user_settings(settings, request).home).list()
        new_ids = [r.id for r in records]
        picked = next((r for r in records if r.id == current), None)
        # the dropdown only changes when the set of jobs does, so it never jumps under the pointer
        menu = gr.skip()
        if new_ids != ids:
            menu = gr.update(choices=[(f"{r.title} · {r.created[:19].replace('T', ' ')}", r.id) for r in records],
                             value=current if picked else (new_ids[0] if new_ids else None))
        if picked is None and new_ids:
            picked = records[0]
        return job_table(records), menu, details(picked), new_ids

    @friendly
    def show(current, request: gr.Request):
        if not current:
            return details(None)
        return details(Jobs(user_settings(settings, request).home).get(current))

    @friendly
    def stop(current, request: gr.Request):
        if not current:
            raise gr.Error("Pick a job first.")
        record = Jobs(user_settings(settings, request).home).cancel(current)
        return details(record)

    timer.tick(listing, [choice, known], [table, choice, detail, known])
    choice.change(show, choice, detail)
    cancel.click(stop, choice, detail)

    def first(request: gr.Request):
        return listing(None, [], request)

    return {"load": [(first, [table, choice, detail, known])]}
