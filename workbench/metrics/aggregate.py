"""Summaries with 95% bootstrap confidence intervals, and paired differences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def bootstrap_ci(values: Sequence[float], n_resamples: int = 2000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean. NaNs are dropped; one value gives a zero-width CI."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    if data.size == 1:
        return float(data[0]), float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (n_resamples, data.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(data.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize(scores: pd.DataFrame, by: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """One row per group x metric: n, n_missing, mean, ci_low, ci_high."""
    rows = []
    for key, group in scores.groupby([*by, "metric"], dropna=False, sort=True):
        values = group["value"].astype(float)
        mean, low, high = bootstrap_ci(values.dropna().tolist(), seed=seed)
        rows.append({**dict(zip([*by, "metric"], key if isinstance(key, tuple) else (key,), strict=True)),
                     "n": int(values.notna().sum()), "n_missing": int(values.isna().sum()),
                     "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def paired_difference(scores: pd.DataFrame, metric: str, column: str, a, b,
                      pair_on: Sequence[str] = ("pack", "prompt_id", "seed"), seed: int = 0) -> dict[str, float]:
    """Mean of (b - a) over items matched on ``pair_on`` (same prompt and seed), with its bootstrap CI."""
    frame = scores[scores["metric"] == metric]
    left = frame[frame[column] == a].set_index(list(pair_on))["value"]
    right = frame[frame[column] == b].set_index(list(pair_on))["value"]
    diff = (right - left).dropna()
    mean, low, high = bootstrap_ci(diff.tolist(), seed=seed)
    return {"metric": metric, "a": a, "b": b, "n_pairs": int(diff.size), "mean_diff": mean, "ci_low": low,
            "ci_high": high}
