"""Evaluate tab: score a generation run (tables and plot), and run a QA suite (pass/fail per threshold)."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from workbench import IMAGES, metric_plot, resources, run_suite, score, suite_files, summarize

from .common import folders, friendly, own, user_settings

SUITES = resources.suites()


def runnable_suites(settings) -> list[str]:
    """Suites whose model weights are here (a GPU suite on a laptop is not offered)."""
    from workbench import get_family, load_suite, weights_status

    names = []
    for path in suite_files(SUITES):
        spec = load_suite(path)
        family = get_family(spec.family)
        local_base = spec.base and Path(spec.base).expanduser().exists()
        if family.tiny or local_base or (not spec.base and weights_status(family, settings).startswith("in the")):
            names.append(path.stem)
    return names


def readable(summary: pd.DataFrame) -> pd.DataFrame:
    """Numbers for reading: 2 decimals, the CI as one column, no internal column names."""
    rows = []
    for row in summary.to_dict("records"):
        ci = (f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]" if pd.notna(row.get("ci_low"))
              else (row.get("ci_note") or "—"))
        rows.append({"sampler": row.get("sampler"), "steps": row.get("steps"), "metric": row["metric"],
                     "images": row["n"], "mean": None if pd.isna(row["mean"]) else round(float(row["mean"]), 2),
                     "95% interval": ci})
    return pd.DataFrame(rows)


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
            suite = gr.Dropdown(runnable_suites(settings), label="QA suite (those that can run on this machine)",
                                elem_id="suite-choice")
            suite_button = gr.Button("Run suite")
        verdict = gr.Markdown(elem_id="suite-verdict")
        checks = gr.Dataframe(label="Thresholds", interactive=False)
        report_file = gr.File(label="Report (HTML)")

    def runs(request: gr.Request):
        found = folders(Path(user_settings(settings, request).home) / "runs", IMAGES)
        return gr.update(choices=[(Path(p).name, p) for p in found], value=found[0] if found else None)

    @friendly
    def do_score(chosen, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not chosen:
            raise gr.Error("Pick a run (generate one in the Packs tab, then 'Refresh runs').")
        user = user_settings(settings, request)
        table = score(own(user, chosen, "runs"), clip_model=None, progress=True, settings=user)
        png = metric_plot(table)
        return readable(summarize(table, ["sampler", "steps"])), Image.open(io.BytesIO(png)) if png else None

    @friendly
    def do_suite(path, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not path:
            raise gr.Error("Pick a suite.")
        suites = {p.stem: p for p in suite_files(SUITES)}  # names in the page, never server paths
        if path not in suites:
            raise gr.Error("Pick one of the listed suites.")
        path = suites[path]
        result = run_suite(path, settings=user_settings(settings, request), progress=True)
        checks = pd.DataFrame(result.checks)[["check", "value", "passed", "message"]].round(3)
        return f"### Suite {result.name}: {'PASS' if result.passed else 'FAIL'}", checks, result.report

    refresh.click(runs, None, run)
    score_button.click(do_score, run, [summary, plot])
    suite_button.click(do_suite, suite, [verdict, checks, report_file])
    return {}
