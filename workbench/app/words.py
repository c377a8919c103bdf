"""What the app says about numbers, in plain words: each metric by its title from the registry (never its
code), rounded, with its 95% range and how to read it; settings as people say them. Product staff read
these tables; researchers have the Parquet tables and the notebooks."""

from __future__ import annotations

import math

import pandas as pd

from workbench import METRICS, SAMPLERS

HIDDEN = {"kid_clip_std"}  # the spread of KID over subsets: part of KID's interval, not a result of its own
NOISE_BANNER = ("**Test model:** the tiny families have random weights, so their images are coloured noise and "
                "every likeness number below says nothing about a face. They check the machinery in seconds; "
                "train on a real family (SDXL, SD 1.5, FLUX) for real photos.")

SAMPLER_HELP = ("How the picture is drawn out of noise, step by step. euler is a good default; dpmpp-2m is sharp in "
                "fewer steps; the others are for comparing.")
STEPS_HELP = ("How many refinement steps each image gets. More steps cost time and help up to a point (real "
              "models: 20-40).")
SEEDS_HELP = ("Each seed is one variation of the same prompt; the same seed with the same settings draws the same "
              "image again.")


def number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def title(metric: str) -> str:
    """A metric's plain name (a metric outside the registry keeps its name, made readable)."""
    return METRICS[metric].title if metric in METRICS and METRICS[metric].title else metric.replace("_", " ")


def how_to_read(metric: str, threshold: float | None = None) -> str:
    if metric not in METRICS:
        return ""
    found = METRICS[metric]
    direction = {True: "higher is better", False: "lower is better", None: ""}[found.higher_is_better]
    scale = found.read_as(threshold)
    parts = [found.plain, scale]
    if direction and "better" not in scale and "lower" not in scale and "higher" not in scale:
        parts.append(direction)
    return "; ".join(p for p in parts if p)


def range_words(row: dict) -> str:
    if row.get("ci_low") is not None and pd.notna(row.get("ci_low")):
        return f"{number(row['ci_low'])} to {number(row['ci_high'])}"
    note = str(row.get("ci_note") or "")
    if note == "no values":
        return "not measured"
    if note.startswith("n <"):
        return "too few images for a range (5 or more)"
    return "—"


def settings_words(row: dict) -> str:
    """ "euler, 4 steps" from a summary row's sampler and steps."""
    parts = []
    if row.get("sampler") is not None and pd.notna(row.get("sampler")):
        parts.append(str(row["sampler"]))
    if row.get("steps") is not None and pd.notna(row.get("steps")):
        parts.append(f"{int(row['steps'])} steps")
    return ", ".join(parts) or "all images"


RESULT_WIDTHS = ["13%", "17%", "8%", "17%", "7%", "38%"]


def not_measured(summary: pd.DataFrame) -> list[str]:
    """The titles of the measures with no value anywhere in ``summary`` (left out of ``results_table``)."""
    from workbench import measured_rows

    return [title(m) for m in measured_rows(summary)[1] if m not in HIDDEN]


def results_table(summary: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """A ``summarize`` table for reading: settings, what, average, 95% range, images, how to read it; the
    measures with no value anywhere are left out (``not_measured`` names them)."""
    columns = ["Settings", "What", "Average", "95% range", "Images", "How to read it"]
    rows = []
    counts = summary.groupby("metric")["n"].sum()
    for row in summary.to_dict("records"):
        if row["metric"] in HIDDEN or counts[row["metric"]] == 0:
            continue
        rows.append({"Settings": settings_words(row), "What": title(row["metric"]),
                     "Average": number(row.get("mean")), "95% range": range_words(row), "Images": int(row["n"]),
                     "How to read it": how_to_read(row["metric"], threshold)})
    return pd.DataFrame(rows, columns=columns)


def allowed(check: dict) -> str:
    low, high = check.get("min"), check.get("max")
    if low is not None and high is not None:
        return f"{number(low)} to {number(high)}"
    if low is not None:
        return f"at least {number(low)}"
    if high is not None:
        return f"at most {number(high)}"
    return "—"


def checks_table(checks: list[dict]) -> pd.DataFrame:
    """A suite's thresholds for reading: what, compared with what, the value, what is allowed, the result."""
    columns = ["What", "Value", "Allowed", "Result", "Why this limit"]
    rows = []
    for check in checks:
        what = title(check.get("metric") or "")
        if check.get("vs_baseline"):
            what += ", change from the base model"
        elif check.get("vs_real"):
            what += ", compared with real photos"
        rows.append({"What": what, "Value": number(check.get("value")), "Allowed": allowed(check),
                     "Result": "passed" if check.get("passed") else ("no value" if check.get("value") is None
                                                                     else "failed"),
                     "Why this limit": check.get("why") or ""})
    return pd.DataFrame(rows, columns=columns)


def sampler_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(SAMPLERS)]
