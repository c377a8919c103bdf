"""Compare tab: two runs side by side — the same prompts and seeds as images, the metrics on shared axes,
and a plain verdict with its paired CI ("Run B looks more like the person: +0.08 [0.03, 0.13]")."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from workbench import FAMILIES, paired_difference, read_images, read_scores, summarize

from .common import friendly, user_settings
from .words import NOISE_BANNER, title

METRICS_SHOWN = ("test_facesim", "train_facesim", "face_detected", "sharpness")


def comparables(home: Path) -> list[str]:
    """The names of the person's scored runs."""
    runs = [p.parent for p in (home / "runs").glob("*/scores.parquet")] if (home / "runs").is_dir() else []
    return sorted(p.name for p in runs)


def verdict(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str) -> str:
    """Which run looks more like the person, with the paired difference and its 95% CI."""
    both = pd.concat([a.assign(arm="A"), b.assign(arm="B")], ignore_index=True)
    for metric, against in (("test_facesim", "test photos"), ("train_facesim", "training photos")):
        rows = both[(both.metric == metric) & both.value.notna()]
        if rows.empty:
            continue
        try:
            diff = paired_difference(rows, metric, "arm", "A", "B")
        except Exception:  # noqa: BLE001 - runs that cannot be paired: say so instead of guessing
            return ("These runs cannot be compared image by image: render the same packs, prompts and seeds in "
                    "both, changing one setting.")
        n, mean = diff["n_pairs"], diff["mean_diff"]
        if n == 0:
            return "The two runs share no prompt and seed: render the same prompts and seeds to compare them."
        if not np.isfinite(diff["ci_low"]):
            return f"Too few matching images to tell ({n} pairs; 5 or more are needed). Render more seeds."
        interval = (f"a difference of {mean:+.2f} in similarity (95% range {diff['ci_low']:+.2f} to "
                    f"{diff['ci_high']:+.2f}) over {n} matching images, against the {against}")
        if diff["ci_low"] > 0:
            return f"**Run {name_b} looks more like the person**: {interval}."
        if diff["ci_high"] < 0:
            return f"**Run {name_a} looks more like the person**: {interval}."
        return f"**No clear difference in likeness**: {interval}."
    return "No faces were found in these images, so likeness cannot be compared (tiny models draw noise)."


def side_by_side(path_a: Path, path_b: Path) -> list[tuple[str, str]]:
    """The same prompt and seed from both runs, next to each other."""
    a, b = (read_images(p) for p in (path_a, path_b))
    matched = a.merge(b, on=["pack", "prompt_id", "seed"], suffixes=("_a", "_b"))
    items = []
    for row in matched.head(12).to_dict("records"):
        label = f"{row['pack']} / {row['prompt_id']} · seed {row['seed']}"
        items += [(str(path_a / row["path_a"]), f"A · {label}"), (str(path_b / row["path_b"]), f"B · {label}")]
    return items


def shared_axes_plot(a: pd.DataFrame, b: pd.DataFrame) -> Image.Image | None:
    """Each metric's mean and CI for both runs on one axis per metric."""
    summaries = [summarize(t.assign(run=name), ["run"]) for t, name in ((a, "A"), (b, "B"))]
    table = pd.concat(summaries)
    metrics = [m for m in METRICS_SHOWN if (table[table.metric == m]["n"] > 0).any()]
    if not metrics:
        return None
    fig = Figure(figsize=(3.2 * len(metrics), 3))
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        rows = table[table.metric == metric].set_index("run").reindex(["A", "B"])
        mean = rows["mean"].to_numpy(dtype=float)
        errors = [np.nan_to_num(mean - rows["ci_low"].to_numpy(dtype=float)),
                  np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) - mean)]
        ax.bar(["A", "B"], np.nan_to_num(mean), yerr=errors, capsize=4, color=["#6b7280", "#2563eb"])
        ax.set_title(title(metric), fontsize=10)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    return Image.open(io.BytesIO(buffer.getvalue()))


def build(settings, shared: dict) -> dict:
    with gr.Tab("Compare") as tab:
        with gr.Row():
            left = gr.Dropdown([], label="Run A", elem_id="compare-a")
            right = gr.Dropdown([], label="Run B", elem_id="compare-b")
            refresh = gr.Button("Refresh", elem_id="refresh-compare")
            go = gr.Button("Compare", variant="primary", elem_id="compare-button")
        result = gr.Markdown(elem_id="compare-verdict")
        banner = gr.Markdown(NOISE_BANNER, visible=False, elem_id="compare-banner")
        plot = gr.Image(label="Metrics, same axes (mean and 95% CI)", type="pil", elem_id="compare-plot")
        pairs = gr.Gallery(label="Same prompt and seed: A, then B", columns=4, elem_id="compare-images")

    def choices(a, b, request: gr.Request):
        found = comparables(Path(user_settings(settings, request).home))
        return (gr.update(choices=found, value=a if a in found else None),
                gr.update(choices=found, value=b if b in found else None))

    def first_choices(request: gr.Request):
        return choices(None, None, request)

    @friendly
    def compare(path_a: str | None, path_b: str | None, request: gr.Request):
        if not path_a or not path_b:
            raise gr.Error("Pick two runs (score them in the Evaluate tab first; 'Refresh' lists them).")
        home = Path(user_settings(settings, request).home)
        mine = comparables(home)
        if path_a not in mine or path_b not in mine:  # only the user's own runs, by name, never a path
            raise gr.Error("That item is not in your workspace.")
        name_a, name_b = path_a, path_b
        path_a, path_b = home / "runs" / name_a, home / "runs" / name_b
        a, b = (read_scores(p) for p in (path_a, path_b))
        tiny = any(FAMILIES[f].random_weights for t in (a, b) if "family" in t
                   for f in t["family"].dropna().unique() if f in FAMILIES)
        return (verdict(a, b, f"A ({name_a})", f"B ({name_b})"), gr.update(visible=tiny), shared_axes_plot(a, b),
                side_by_side(Path(path_a), Path(path_b)))

    refresh.click(choices, [left, right], [left, right])
    tab.select(choices, [left, right], [left, right])
    go.click(compare, [left, right], [result, banner, plot, pairs])
    return {"load": [(first_choices, [left, right])],
            "cleared_on_delete": [result, plot, pairs]}
