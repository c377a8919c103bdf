"""Summaries and paired differences with intervals that cover the noise that matters.

- Levels: when a table carries several ``identity`` (people) or ``replicate`` (independent training
  runs) values, CIs come from a hierarchical bootstrap: resample identities, then replicates within an
  identity, then images within a replicate (Davison & Hinkley 1997, sec. 3.8; Field & Welsh 2007). A level
  with one unit cannot be resampled, and the ``ci_method`` column says which levels were.
- Rates (0/1 per item: face detected, photo flagged) get Wilson score intervals (Wilson 1927; Brown,
  Cai & DasGupta 2001) when images are the only level.
- A group with fewer than ``MIN_N`` values gets no CI (``ci_note`` says "n < 5"): never a zero-width
  interval from one training run.
- ``summarize`` never pools recognizers: their scales differ.
- ``paired_difference`` pairs on every factor column (prompt, seed, sampler, steps, recognizer, cell,
  replicate, identity, ...), refuses a factor that differs between the two arms (unless told to drop it, and
  then records it) and duplicate keys, reports what stayed unpaired, and gives a sign-flip permutation
  p-value on the independent units; ``holm`` adjusts a family of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import WorkbenchError
from .registry import is_rate

MIN_N = 5
Z95 = 1.959963984540054
LEVELS = ("identity", "replicate")  # outermost first; images are the innermost level
# Columns that identify an item (what to pair on), as opposed to values and per-row annotations.
FACTORS = ("identity", "replicate", "cell", "kind", "strength", "fraction", "arm", "pack", "prompt_id", "sampler",
           "steps", "guidance", "seed", "recognizer", "photo", "size")


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at p = 0 (or 1) the bound is exactly 0 (or 1); the formula gives it up to rounding (2.8e-17)
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return float(low), float(high)


def bootstrap_ci(values: Sequence[float], n_resamples: int = 2000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean over independent values. NaNs are dropped;
    fewer than ``MIN_N`` values give no interval (NaN bounds)."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    if data.size < MIN_N:
        return float(data.mean()), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (n_resamples, data.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(data.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def resampled_levels(frame: pd.DataFrame) -> list[str]:
    """The levels above images that have more than one unit in ``frame``."""
    return [lv for lv in LEVELS if lv in frame.columns and frame[lv].nunique(dropna=True) > 1]


def hierarchical_bootstrap(frame: pd.DataFrame, levels: Sequence[str], value: str = "value",
                           n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of the pooled mean, resampling ``levels`` (outermost first) and then rows."""
    frame = frame[np.isfinite(frame[value].astype(float))]
    if frame.empty:
        return float("nan"), float("nan"), float("nan")

    def nest(part: pd.DataFrame, depth: int):
        if depth == len(levels):
            return part[value].to_numpy(dtype=float)
        return [nest(sub, depth + 1) for _, sub in part.groupby(levels[depth], sort=True)]

    tree = nest(frame, 0)
    rng = np.random.default_rng(seed)

    def draw(node) -> np.ndarray:
        if isinstance(node, np.ndarray):
            return node[rng.integers(0, node.size, node.size)]
        picks = rng.integers(0, len(node), len(node))
        return np.concatenate([draw(node[i]) for i in picks])

    means = np.array([draw(tree).mean() for _ in range(n_resamples)])
    alpha = (1 - level) / 2
    return (float(frame[value].astype(float).mean()), float(np.quantile(means, alpha)),
            float(np.quantile(means, 1 - alpha)))


def interval(frame: pd.DataFrame, metric: str, seed: int = 0) -> dict:
    """Mean and 95 % CI of one group of one metric, with how it was computed."""
    values = frame["value"].astype(float)
    finite = frame[np.isfinite(values)]
    n = len(finite)
    out = {"n": n, "n_missing": int(len(frame) - n), "mean": float(finite["value"].mean()) if n else float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan"), "ci_method": "", "ci_note": ""}
    if n == 0:
        out["ci_note"] = "no values"
        return out
    levels = resampled_levels(finite)
    units = finite[levels[0]].nunique() if levels else n
    if units < MIN_N:
        out["ci_note"] = f"n < {MIN_N}" + (f" {levels[0]} values" if levels else "")
        return out
    if levels:
        _, low, high = hierarchical_bootstrap(finite, levels, seed=seed)
        out.update(ci_low=low, ci_high=high, ci_method="hierarchical bootstrap over " + ", ".join([*levels, "images"]))
    elif is_rate(metric):
        low, high = wilson_interval(float(finite["value"].sum()), n)
        out.update(ci_low=low, ci_high=high, ci_method="Wilson")
    else:
        _, low, high = bootstrap_ci(finite["value"].tolist(), seed=seed)
        out.update(ci_low=low, ci_high=high, ci_method="bootstrap over images")
    return out


def summarize(scores: pd.DataFrame, by: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """One row per group x metric: n, n_missing, mean, ci_low, ci_high, ci_method, ci_note. The recognizer
    is always a grouping column when the table holds more than one."""
    by = list(by)
    if "recognizer" in scores.columns and "recognizer" not in by and scores["recognizer"].nunique(dropna=True) > 1:
        by.append("recognizer")
    rows = []
    for key, group in scores.groupby([*by, "metric"], dropna=False, sort=True):
        keys = dict(zip([*by, "metric"], key if isinstance(key, tuple) else (key,), strict=True))
        rows.append({**keys, **interval(group, keys["metric"], seed)})
    return pd.DataFrame(rows)


# Columns that describe an arm itself (a study cell's id, a degradation's kind and strength, an identity arm):
# disjoint between the two arms by construction, so they are not pairing keys. Every other factor must take
# the same values on both sides, or the pairing would match images across it.
ARM_ATTRIBUTES = ("cell", "kind", "strength", "fraction", "arm")


def pairing_keys(frame: pd.DataFrame, column: str, left: pd.DataFrame, right: pd.DataFrame,
                 drop: Sequence[str] = ()) -> list[str]:
    """Factor columns to pair on: every factor present except ``column``, the arm's own attributes
    (``ARM_ATTRIBUTES``) and what ``drop`` names. A factor whose values do not overlap between the two arms
    (euler at seed 0 against dpmpp_2m at seed 1) would pair images across it: refused, naming the factor,
    unless ``drop`` names it knowingly."""
    keys = []
    for name in FACTORS:
        if name == column or name not in frame.columns or name in drop:
            continue
        a, b = set(left[name].dropna().unique()), set(right[name].dropna().unique())
        if (a or b) and not a & b:
            if name in ARM_ATTRIBUTES:
                continue
            raise WorkbenchError(f"cannot pair {column}={left[column].iloc[0] if len(left) else '?'!r} with "
                                 f"{column}={right[column].iloc[0] if len(right) else '?'!r}: they differ in "
                                 f"{name!r} ({_few(a)} against {_few(b)}), so no image of one matches an image of "
                                 f"the other. Render both with the same {name}, or drop {name!r} knowingly "
                                 f"(paired_difference(..., drop=[{name!r}])).")
        keys.append(name)
    return keys


def _few(values: set) -> str:
    shown = sorted(map(str, values))[:3]
    return ", ".join(shown) + (" ..." if len(values) > 3 else "")


def paired_difference(scores: pd.DataFrame, metric: str, column: str, a, b, seed: int = 0,
                      drop: Sequence[str] = ()) -> dict:
    """Mean of (b - a) over items matched on every factor column, with its CI (hierarchical when
    identities/replicates vary), a sign-flip permutation p-value, and the count of unpaired items. A factor
    that differs between the two arms is refused unless ``drop`` names it; the result records what was
    dropped."""
    frame = scores[(scores["metric"] == metric) & scores[column].isin([a, b])]
    frame = frame[frame["image_id"].notna()] if "image_id" in frame.columns and frame["image_id"].notna().any() \
        else frame
    left, right = frame[frame[column] == a], frame[frame[column] == b]
    keys = pairing_keys(frame, column, left, right, drop)
    for side, part in ((a, left), (b, right)):
        duplicated = part[part.duplicated(keys, keep=False)] if keys else part.iloc[1:]
        if len(duplicated):
            example = duplicated.iloc[0][keys].to_dict() if keys else {}
            raise WorkbenchError(f"paired_difference({metric!r}, {column}={side!r}): {len(duplicated)} rows share the "
                                 f"key {example} over columns {keys}; add the column that tells them apart.")
    merged = left[[*keys, "value"]].merge(right[[*keys, "value"]], on=keys, how="outer", suffixes=("_a", "_b"),
                                          indicator=True)
    both = merged[merged["_merge"] == "both"].copy()
    both["value"] = both["value_b"].astype(float) - both["value_a"].astype(float)
    both = both[np.isfinite(both["value"])]
    result = {"metric": metric, "column": column, "a": a, "b": b, "pair_on": ", ".join(keys),
              "dropped": ", ".join(name for name in drop if name in frame.columns), "n_pairs": len(both),
              "n_unpaired_a": int((merged["_merge"] == "left_only").sum()),
              "n_unpaired_b": int((merged["_merge"] == "right_only").sum())}
    stats = interval(both.assign(metric="difference"), "difference", seed)
    result.update(mean_diff=stats["mean"], ci_low=stats["ci_low"], ci_high=stats["ci_high"],
                  ci_method=stats["ci_method"], ci_note=stats["ci_note"], p_value=sign_flip_p(both, seed))
    return result


def sign_flip_p(diffs: pd.DataFrame, seed: int = 0, n_permutations: int = 10000) -> float:
    """Two-sided sign-flip permutation p-value of mean difference = 0, on the independent units: the
    outermost level that varies (per-unit mean differences), else the pairs themselves."""
    if diffs.empty:
        return float("nan")
    levels = resampled_levels(diffs)
    units = (diffs.groupby(levels[0])["value"].mean() if levels else diffs["value"]).to_numpy(dtype=float)
    if units.size < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    observed = abs(units.mean())
    signs = rng.choice([-1.0, 1.0], size=(n_permutations, units.size))
    extreme = (np.abs((signs * units).mean(axis=1)) >= observed - 1e-12).sum()
    return float((extreme + 1) / (n_permutations + 1))


def difference_of_means(a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0) -> dict:
    """mean(a) - mean(b) for two independent samples, with a percentile bootstrap CI (none when either
    side has fewer than ``MIN_N`` values)."""
    a = np.asarray([v for v in a if v is not None and np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in b if v is not None and np.isfinite(v)], dtype=float)
    out = {"mean_diff": float(a.mean() - b.mean()) if a.size and b.size else float("nan"), "n_a": int(a.size),
           "n_b": int(b.size), "ci_low": float("nan"), "ci_high": float("nan"), "ci_note": ""}
    if min(a.size, b.size) < MIN_N:
        out["ci_note"] = f"n < {MIN_N}"
        return out
    rng = np.random.default_rng(seed)
    diffs = (a[rng.integers(0, a.size, (n_resamples, a.size))].mean(1)
             - b[rng.integers(0, b.size, (n_resamples, b.size))].mean(1))
    out.update(ci_low=float(np.quantile(diffs, 0.025)), ci_high=float(np.quantile(diffs, 0.975)))
    return out


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN), in the input order."""
    p = np.asarray(p_values, dtype=float)
    valid = np.where(np.isfinite(p))[0]
    adjusted = np.full(p.shape, np.nan)
    order = valid[np.argsort(p[valid])]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
