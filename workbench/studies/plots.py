"""What every study kind's plots share (each kind draws its own, in its module, from the summary tables).
``matplotlib.figure.Figure`` directly (no pyplot, no backend switch), so importing this never changes how
a notebook draws."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..report import mark_no_interval, no_interval  # noqa: F401 (the kinds' plots use them)


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (laid out tight, 90 dpi), for reports."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def errors(rows: pd.DataFrame) -> list:
    """Error-bar lengths (below, above the mean) from a summary's 95% CI columns; 0 where there is none."""
    mean = rows["mean"].to_numpy(dtype=float)
    return [np.nan_to_num(mean - rows["ci_low"].to_numpy(dtype=float)),
            np.nan_to_num(rows["ci_high"].to_numpy(dtype=float) - mean)]
