"""Evaluate tab: score a generation run (tables and plot), and run a QA suite (pass/fail per threshold)."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
from PIL import Image

from ..metrics import score, summarize
from ..report import metric_plot
from ..suites import run_suite, suite_files
from .common import folders, friendly, own, user_settings

SUITES = Path(__file__).resolve().parent.parent.parent / "evaluation" / "suites"


def build(settings, shared: dict) -> dict:
    with gr.Tab("Evaluate"):
        with gr.Row():
            run = gr.Dropdown([], label="Generation run", elem_id="run-choice")
            refresh = gr.Button("Refresh runs", elem_id="refresh-runs")
            score_button = gr.Button("Score", variant="primary", elem_id="score-button")
        summary = gr.Dataframe(label="Summary by sampler and steps (mean, 95% CI)", interactive=False,
                               elem_id="score-summary")
        plot = gr.Image(label="Metrics vs steps", type="pil")
        with gr.Row():
            suite = gr.Dropdown([p.stem for p in suite_files(SUITES)], label="QA suite", elem_id="suite-choice")
            suite_button = gr.Button("Run suite")
        verdict = gr.Markdown(elem_id="suite-verdict")
        checks = gr.Dataframe(label="Thresholds", interactive=False)

    def runs(request: gr.Request):
        found = folders(Path(user_settings(settings, request).home) / "runs", "images.parquet")
        return gr.update(choices=found, value=found[0] if found else None)

    @friendly
    def do_score(chosen, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not chosen:
            raise gr.Error("Pick a run (generate one in the Packs tab, then 'Refresh runs').")
        user = user_settings(settings, request)
        table = score(own(user, chosen, "runs"), clip_model=None, progress=True, settings=user)
        png = metric_plot(table)
        return summarize(table, ["sampler", "steps"]).round(3), Image.open(io.BytesIO(png)) if png else None

    @friendly
    def do_suite(path, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not path:
            raise gr.Error("Pick a suite.")
        suites = {p.stem: p for p in suite_files(SUITES)}  # names in the page, never server paths
        if path not in suites:
            raise gr.Error("Pick one of the listed suites.")
        path = suites[path]
        result = run_suite(path, settings=user_settings(settings, request), progress=True)
        import pandas as pd

        return (f"### Suite {result.name}: {'PASS' if result.passed else 'FAIL'}\nReport: `{result.report}`",
                pd.DataFrame(result.checks)[["check", "value", "passed", "message"]])

    refresh.click(runs, None, run)
    score_button.click(do_score, run, [summary, plot])
    suite_button.click(do_suite, suite, [verdict, checks])
    return {}
