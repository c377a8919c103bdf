"""Reports from tables only: a self-contained HTML page (thumbnails and plots inlined) and Markdown.

The first section names the family, recognizer, versions and seeds; tiny-family output is marked
as noise in a banner on both.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from .metrics.aggregate import summarize
from .metrics.registry import METRICS
from .store import atomic_write_bytes, atomic_write_text, package_versions

NOISE_BANNER = ("TINY MODEL: these images come from random weights and are noise. They test the machinery, "
                "not likeness. Use a real family (--base sdxl) on a GPU for real photos.")
PLOT_METRICS = ("face_detected", "test_facesim", "sharpness", "clip_score")


def _png_b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _thumb(path: Path, side: int = 160) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        if max(image.size) < side:  # tiny-model images are 64 px: enlarge so they can be seen
            scale = side / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def no_interval(rows: pd.DataFrame) -> np.ndarray:
    """Which rows of a summary have no 95 % interval (too few units, or no values)."""
    return ~(np.isfinite(rows["ci_low"].to_numpy(dtype=float)) & np.isfinite(rows["ci_high"].to_numpy(dtype=float)))


def mark_no_interval(ax, x, rows: pd.DataFrame) -> None:
    """Draw the means that have no interval as open markers, and say so on the axes: an error bar of zero
    length would read as certainty."""
    missing = no_interval(rows)
    means = rows["mean"].to_numpy(dtype=float)
    if not missing.any() or not np.isfinite(means[missing]).any():
        return
    ax.scatter(np.asarray(x)[missing], means[missing], s=60, facecolors="white", edgecolors="black", zorder=5)
    ax.text(0.01, 0.99, "open: no interval (n < 5)", transform=ax.transAxes, va="top", fontsize=7)


def metric_plot(scores: pd.DataFrame, plain: bool = False) -> bytes | None:
    """Mean +/- 95% CI of each plotted metric vs steps, one line per sampler. ``plain``: each panel titled
    with the metric's plain name only (the app), else its plain name and its code."""
    summary = summarize(scores[scores["image_id"].notna()], ["sampler", "steps"])
    metrics = [m for m in PLOT_METRICS if m in set(summary["metric"]) and summary[summary.metric == m]["n"].sum()]
    if not metrics:
        return None
    fig = Figure(figsize=(4 * len(metrics), 3.2))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = summary[summary["metric"] == metric]
        for sampler, rows in part.groupby("sampler"):
            rows = rows.sort_values("steps")
            errors = [(rows["mean"] - rows["ci_low"]).fillna(0), (rows["ci_high"] - rows["mean"]).fillna(0)]
            ax.errorbar(rows["steps"], rows["mean"], yerr=errors, marker="o", capsize=3, label=sampler)
            mark_no_interval(ax, rows["steps"], rows)
        name = METRICS[metric].title if metric in METRICS and METRICS[metric].title else metric
        ax.set_title(name if plain or name == metric else f"{name}\n({metric})", fontsize=10)
        ax.set_xlabel("steps")
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def metric_glossary(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    """Direction and definition of every registered metric that appears in the report's tables."""
    names: set[str] = set()
    for frame in frames:
        if frame is not None and "metric" in frame.columns:
            names |= set(frame["metric"].dropna().astype(str))
    rows = [{"metric": m.name, "direction": m.direction, "level": m.level, "definition": m.definition,
             "source": m.source} for name, m in METRICS.items() if name in names]
    return pd.DataFrame(rows)


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(empty)_\n"
    cells = frame.astype(object).where(frame.notna(), "—").astype(str)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(v.replace("|", "/") for v in row) + " |" for row in cells.values.tolist()]
    return "\n".join(lines) + "\n"


def measured_rows(summary: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The summary's rows that hold a value, whole-number settings (steps, seeds) shown as integers, and the
    metrics with no value in any group: a reader gets one line for those, not a row of dashes per group."""
    shown = summary[summary["n"] > 0].copy()
    for column in shown.columns.drop(["metric", "mean", "ci_low", "ci_high"], errors="ignore"):
        values = shown[column]
        if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
            shown[column] = values.astype("Int64")
    unmeasured = sorted(set(summary["metric"]) - set(shown["metric"]))
    return shown, unmeasured


def write_report(out: str | os.PathLike, title: str, facts: dict[str, Any], check: pd.DataFrame | None,
                 curve: pd.DataFrame | None, images: pd.DataFrame | None, image_root: Path | None,
                 scores: pd.DataFrame | None, tiny: bool, sections: list[tuple[str, pd.DataFrame]] = (),
                 plots: list[tuple[str, bytes]] = (), protocol: dict[str, str] | None = None) -> Path:
    """Write ``index.html`` and ``report.md`` (with ``thumbs/`` and ``plot.png``) into ``out``.
    ``protocol`` (``protocol.protocol_facts``) leads the report; ``sections`` and ``plots`` add titled tables
    and PNG plots (studies, suites)."""
    out = Path(out)
    if protocol is None:
        facts = {**facts, "versions": ", ".join(f"{k} {v}" for k, v in package_versions().items())}
    h = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
         "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}.banner{background:#fde68a;padding:1em;"
         "font-weight:bold;border:2px solid #b45309}.grid{display:flex;flex-wrap:wrap;gap:8px}"
         "figure{margin:0;font-size:11px;width:170px}</style>", f"<h1>{html.escape(title)}</h1>"]
    md = [f"# {title}\n"]
    if tiny:
        h.append(f"<p class='banner'>{html.escape(NOISE_BANNER)}</p>")
        md.append(f"> **{NOISE_BANNER}**\n")
    if protocol:
        h.append("<h2>Protocol</h2><table class='protocol'>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in protocol.items())
            + "</table>")
        md.append("## Protocol\n\n" + _md_table(pd.DataFrame({"key": list(protocol),
                                                             "value": [str(v) for v in protocol.values()]})))
    h.append("<h2>Run</h2><table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                             for k, v in facts.items()) + "</table>")
    md.append("## Run\n\n" + _md_table(pd.DataFrame({"key": list(facts), "value": [str(v) for v in facts.values()]})))
    for name, data in plots:
        atomic_write_bytes(out / f"{name}.png", data)
        h.append(f"<h2>{html.escape(name)}</h2><img src='{_png_b64(data)}'>")
        md.append(f"## {name}\n\n![{name}]({name}.png)\n")
    tables = [("Selfie check", check), ("Training curve (validation identity per checkpoint: chooses the checkpoint, "
                                        "never reported as a test score)", curve), *sections]
    for name, frame in tables:
        if frame is not None:
            h.append(f"<h2>{name}</h2>" + frame.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}"))
            md.append(f"## {name}\n\n" + _md_table(frame.round(3)))
    if images is not None and image_root is not None:
        thumbs = out / "thumbs"
        h.append("<h2>Generated images</h2><div class='grid'>")
        md.append("## Generated images\n")
        for row in images.to_dict("records"):
            data = _thumb(image_root / row["path"])
            atomic_write_bytes(thumbs / f"{row['image_id']}.png", data)
            label = f"{row['pack']}/{row['prompt_id']} · {row['sampler']} · {row['steps']} steps · seed {row['seed']}"
            h.append(f"<figure><img src='{_png_b64(data)}' width=160><figcaption>{html.escape(label)}"
                     f"</figcaption></figure>")
            md.append(f"![{label}](thumbs/{row['image_id']}.png) ")
        h.append("</div>")
        md.append("\n")
    glossary = metric_glossary([scores, *(frame for _, frame in sections)])
    if not glossary.empty:
        h.append("<h2>Metrics: direction and definition</h2>" + glossary.to_html(index=False))
        md.append("## Metrics: direction and definition\n\n" + _md_table(glossary))
    if scores is not None:
        summary = summarize(scores, ["sampler", "steps"])
        plot = metric_plot(scores)
        h.append("<h2>Scores by sampler and steps (mean, 95% CI; identity against test photos only)</h2>")
        md.append("## Scores by sampler and steps (mean, 95% CI; identity against test photos only)\n\n")
        if plot:
            atomic_write_bytes(out / "plot.png", plot)
            h.append(f"<img src='{_png_b64(plot)}'>")
            md.append("![metrics vs steps](plot.png)\n\n")
        shown, unmeasured = measured_rows(summary)
        h.append(shown.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}"))
        md.append(_md_table(shown.round(3)))
        if unmeasured:
            line = f"No value in any group: {', '.join(unmeasured)} (why: below)."
            h.append(f"<p>{html.escape(line)}</p>")
            md.append(f"\n{line}\n")
        # every missing value, per image and per prompt group or run (LPIPS diversity, FID/KID), with its reason
        reasons = (scores[scores["value"].isna()].groupby(["metric", "reason"]).size()
                   .reset_index(name="rows without a value"))
        h.append("<h3>Missing values and why</h3>" + reasons.to_html(index=False))
        md.append("\n### Missing values and why\n\n" + _md_table(reasons))
    atomic_write_text(out / "index.html", "\n".join(h))
    atomic_write_text(out / "report.md", "\n".join(md))
    return out / "index.html"
