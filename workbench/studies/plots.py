"""Study plots, drawn from the summary tables only. ``matplotlib.figure.Figure`` directly (no pyplot,
no backend switch), so importing this module never changes how a notebook draws."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

STEP_METRICS = ("test_facesim", "clip_score", "sharpness", "seconds_per_image")


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _errors(rows: pd.DataFrame) -> list:
    mean = rows["mean"].to_numpy(dtype=float)
    return [np.nan_to_num(mean - rows["ci_low"].to_numpy(dtype=float)),
            np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) - mean)]


def sampler_steps_plot(summary: pd.DataFrame) -> bytes:
    """Each metric vs steps, one line per sampler (and recognizer), 95% CI error bars where n >= 5."""
    fig = Figure(figsize=(4 * len(STEP_METRICS), 3.2))
    axes = fig.subplots(1, len(STEP_METRICS), squeeze=False)
    for ax, metric in zip(axes[0], STEP_METRICS, strict=True):
        part = summary[(summary["metric"] == metric) & (summary["n"] > 0)]
        lines = ["sampler", "recognizer"] if "recognizer" in part and part["recognizer"].nunique() > 1 else ["sampler"]
        for key, rows in part.groupby(lines):
            rows = rows.sort_values("steps")
            ax.errorbar(rows["steps"], rows["mean"], yerr=_errors(rows), marker="o", capsize=3,
                        label=" / ".join(map(str, key if isinstance(key, tuple) else (key,))))
        if part.empty:
            ax.text(0.5, 0.5, "no values\n(see the table's reasons)", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=8)
        ax.set_title(metric)
        ax.set_xlabel("steps")
    return png(fig)


def tradeoff_plot(summary: pd.DataFrame, fidelity: str = "test_facesim", quality: str = "clip_score") -> bytes:
    """Fidelity vs time, one point per (sampler, steps), coloured by the quality metric: where the
    cheap settings lose likeness."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    table = summary.pivot_table(index=["sampler", "steps"], columns="metric", values="mean", aggfunc="first")
    if fidelity not in table or "seconds_per_image" not in table or table[fidelity].isna().all():
        ax.text(0.5, 0.5, f"no {fidelity} values\n(no faces in the images?)", ha="center", va="center",
                transform=ax.transAxes)
        return png(fig)
    colour = table[quality] if quality in table and table[quality].notna().any() else None
    points = ax.scatter(table["seconds_per_image"], table[fidelity], c=colour, cmap="viridis")
    for (sampler, steps), row in table.iterrows():
        ax.annotate(f"{sampler} {steps}", (row["seconds_per_image"], row[fidelity]), fontsize=7)
    if colour is not None:
        fig.colorbar(points, ax=ax, label=quality)
    ax.set_xlabel("seconds per image")
    ax.set_ylabel(fidelity)
    ax.set_title("fidelity vs time (colour: quality)")
    return png(fig)


def upload_quality_plot(summary: pd.DataFrame, deltas: pd.DataFrame, cells: list[str]) -> bytes:
    """Left: what the gate said (share of photos flagged, and by the matching check). Right: what it cost
    (Δ test FaceSim vs clean, 95% CI)."""
    fig = Figure(figsize=(10, 3.4))
    gate, cost = fig.subplots(1, 2)
    x = np.arange(len(cells))
    for offset, metric, label in ((-0.2, "gate_flagged", "any flag"), (0.2, "gate_matching_flag", "matching flag")):
        values = [summary[(summary.cell == c) & (summary.metric == metric)]["mean"].mean() for c in cells]
        gate.bar(x + offset, np.nan_to_num(values), width=0.4, label=label)
    gate.set_xticks(x, cells, rotation=30, ha="right")
    gate.set_ylim(0, 1)
    gate.set_title("what the gate said (share of photos)")
    gate.legend(fontsize=8)
    rows = deltas.groupby("cell").first().reindex(cells[1:]) if not deltas.empty else pd.DataFrame()
    if not rows.empty and rows["mean_diff"].notna().any():
        cost.errorbar(np.arange(len(rows)), rows["mean_diff"], yerr=_errors(rows.rename(columns={"mean_diff": "mean"})),
                      fmt="o", capsize=4)
        cost.axhline(0, color="grey", lw=0.8)
    else:
        cost.text(0.5, 0.5, "no FaceSim values\n(no faces in the probe images)", ha="center", va="center",
                  transform=cost.transAxes)
    cost.set_xticks(np.arange(len(cells) - 1), cells[1:], rotation=30, ha="right")
    cost.set_title("what it cost: Δ test FaceSim vs clean")
    return png(fig)


def arms_plot(summary: pd.DataFrame, arms: list[str]) -> bytes:
    """Test FaceSim, identity match rate and CLIP score per arm, 95% CI where n >= 5."""
    metrics = [m for m in ("test_facesim", "id_match_rate", "clip_score", "seconds_per_image")
               if (summary[(summary.metric == m)]["n"] > 0).any()] or ["test_facesim"]
    fig = Figure(figsize=(3.6 * len(metrics), 3.4))
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        rows = summary[summary.metric == metric].set_index("cell").reindex(arms)
        if rows["n"].fillna(0).sum() == 0:
            ax.text(0.5, 0.5, "no values\n(no faces in the images?)", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.bar(range(len(arms)), np.nan_to_num(rows["mean"].to_numpy(dtype=float)), yerr=_errors(rows), capsize=4)
        ax.set_xticks(range(len(arms)), arms, rotation=25, ha="right", fontsize=8)
        ax.set_title(metric)
    return png(fig)
