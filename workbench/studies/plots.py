"""Study plots, drawn from the summary tables only."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

STEP_METRICS = ("heldout_facesim", "clip_score", "sharpness", "seconds_per_image")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def sampler_steps_plot(summary: pd.DataFrame) -> bytes:
    """Each metric vs steps, one line per sampler, 95% CI error bars (metrics with no values say so)."""
    fig, axes = plt.subplots(1, len(STEP_METRICS), figsize=(4 * len(STEP_METRICS), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], STEP_METRICS, strict=True):
        part = summary[(summary["metric"] == metric) & (summary["n"] > 0)]
        for sampler, rows in part.groupby("sampler"):
            rows = rows.sort_values("steps")
            errors = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
            ax.errorbar(rows["steps"], rows["mean"], yerr=errors, marker="o", capsize=3, label=sampler)
        if part.empty:
            ax.text(0.5, 0.5, "no values\n(see the table's reasons)", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=8)
        ax.set_title(metric)
        ax.set_xlabel("steps")
    return _png(fig)


def upload_quality_plot(summary: pd.DataFrame, deltas: pd.DataFrame, cells: list[str]) -> bytes:
    """Left: what the gate said (share of photos flagged, and by the matching check). Right: what it cost
    (Δ held-out FaceSim vs clean, 95% CI)."""
    fig, (gate, cost) = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(cells))
    for offset, metric, label in ((-0.2, "gate_flagged", "any flag"), (0.2, "gate_matching_flag", "matching flag")):
        values = [summary[(summary.cell == c) & (summary.metric == metric)]["mean"].mean() for c in cells]
        gate.bar(x + offset, np.nan_to_num(values), width=0.4, label=label)
    gate.set_xticks(x, cells, rotation=30, ha="right")
    gate.set_ylim(0, 1)
    gate.set_title("what the gate said (share of photos)")
    gate.legend(fontsize=8)
    rows = deltas.set_index("cell").reindex(cells[1:]) if not deltas.empty else pd.DataFrame()
    if not rows.empty and rows["mean_diff"].notna().any():
        mean = rows["mean_diff"].to_numpy(dtype=float)
        errors = [mean - rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float) - mean]
        cost.errorbar(np.arange(len(mean)), mean, yerr=errors, fmt="o", capsize=4)
        cost.axhline(0, color="grey", lw=0.8)
    else:
        cost.text(0.5, 0.5, "no FaceSim values\n(no faces in the probe images)", ha="center", va="center",
                  transform=cost.transAxes)
    cost.set_xticks(np.arange(len(cells) - 1), cells[1:], rotation=30, ha="right")
    cost.set_title("what it cost: Δ held-out FaceSim vs clean")
    return _png(fig)
