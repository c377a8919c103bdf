"""Compare tab: two scored runs or finished studies side by side (their plots and summaries)."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from ..metrics import summarize
from ..report import metric_plot
from .common import user_settings


def comparables(home: Path) -> list[str]:
    runs = [p.parent for p in (home / "runs").glob("*/scores.parquet")] if (home / "runs").is_dir() else []
    studies = [p.parent for p in home.rglob("study.parquet")]
    return sorted(str(p) for p in runs + studies)


def view(path: str | None):
    if not path:
        return None, None
    folder = Path(path)
    if (folder / "study.parquet").is_file():
        plot = folder / "report" / "study.png"
        return (Image.open(plot) if plot.is_file() else None), pd.read_parquet(folder / "summary.parquet").round(3)
    table = pd.read_parquet(folder / "scores.parquet")
    png = metric_plot(table)
    return (Image.open(io.BytesIO(png)) if png else None), summarize(table, ["sampler", "steps"]).round(3)


def build(settings, shared: dict) -> dict:
    with gr.Tab("Compare"):
        refresh = gr.Button("Refresh", elem_id="refresh-compare")
        with gr.Row():
            with gr.Column():
                left = gr.Dropdown([], label="Run or study A", elem_id="compare-a")
                left_plot, left_table = gr.Image(type="pil", elem_id="compare-a-plot"), gr.Dataframe(interactive=False)
            with gr.Column():
                right = gr.Dropdown([], label="Run or study B")
                right_plot, right_table = gr.Image(type="pil"), gr.Dataframe(interactive=False)

    def choices(request: gr.Request):
        found = comparables(Path(user_settings(settings, request).home))
        return gr.update(choices=found), gr.update(choices=found)

    def own_view(path: str | None, request: gr.Request):
        if not path:
            return None, None
        home = Path(user_settings(settings, request).home)
        if path not in comparables(home):  # only the user's own runs and studies, never a path from the browser
            raise gr.Error("That item is not in your workspace.")
        return view(path)

    refresh.click(choices, None, [left, right])
    left.change(own_view, left, [left_plot, left_table])
    right.change(own_view, right, [right_plot, right_table])
    return {}
