"""The statistics of the evaluation protocol on data whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.metrics.aggregate import (
    hierarchical_bootstrap,
    holm,
    paired_difference,
    summarize,
    wilson_interval,
)


def grid(delta: float = -0.05, seed: int = 0) -> pd.DataFrame:
    """Two arms x 2 step counts x 2 recognizers x 3 prompts x 4 seeds; arm b = arm a + delta exactly."""
    rng = np.random.default_rng(seed)
    rows = []
    for recognizer in ("dlib", "arcface"):
        for steps in (20, 30):
            for prompt in ("p1", "p2", "p3"):
                for s in range(4):
                    base = rng.normal(0.5, 0.1)
                    for arm, value in (("a", base), ("b", base + delta)):
                        rows.append({"arm": arm, "steps": steps, "recognizer": recognizer, "pack": "k",
                                     "prompt_id": prompt, "seed": s, "image_id": f"{arm}{steps}{prompt}{s}",
                                     "metric": "test_facesim", "value": value})
    return pd.DataFrame(rows)


def test_pairing_survives_shuffled_rows_and_reports_missing_ones():
    table = grid()
    straight = paired_difference(table, "test_facesim", "arm", "a", "b")
    assert straight["mean_diff"] == pytest.approx(-0.05)
    assert straight["ci_low"] == pytest.approx(-0.05) and straight["ci_high"] == pytest.approx(-0.05)
    assert straight["n_pairs"] == 48 and straight["n_unpaired_a"] == straight["n_unpaired_b"] == 0
    assert set(straight["pair_on"].split(", ")) >= {"steps", "recognizer", "prompt_id", "seed"}
    shuffled = table.sample(frac=1.0, random_state=3)
    again = paired_difference(shuffled, "test_facesim", "arm", "a", "b")
    assert again["mean_diff"] == pytest.approx(-0.05) and again["ci_high"] == pytest.approx(-0.05)
    missing = shuffled.drop(index=shuffled.index[:1])
    dropped = paired_difference(missing, "test_facesim", "arm", "a", "b")
    assert dropped["n_pairs"] == 47 and dropped["n_unpaired_a"] + dropped["n_unpaired_b"] == 1
    assert dropped["mean_diff"] == pytest.approx(-0.05)


def test_duplicate_keys_are_refused_with_the_key():
    table = grid()
    table = table.drop(columns=["recognizer"])  # now two rows per (arm, steps, prompt, seed)
    with pytest.raises(WorkbenchError, match="share the key"):
        paired_difference(table, "test_facesim", "arm", "a", "b")


def test_attributes_of_an_arm_are_not_pairing_keys():
    """Cells differ in kind/strength: those describe the cell, they are not what pairs images."""
    table = grid().query("recognizer == 'dlib' and steps == 20").copy()
    table["cell"] = table["arm"].map({"a": "clean", "b": "blur-3"})
    table["kind"] = table["arm"].map({"a": "clean", "b": "blur"})
    result = paired_difference(table.drop(columns=["arm"]), "test_facesim", "cell", "clean", "blur-3")
    assert result["n_pairs"] == 12 and "kind" not in result["pair_on"].split(", ")


def test_summarize_never_pools_recognizers_and_says_n_below_5():
    table = grid()
    summary = summarize(table, ["arm"])
    assert set(summary["recognizer"]) == {"dlib", "arcface"} and (summary["n"] == 24).all()
    tiny = summarize(table[table.arm == "a"].head(3), ["arm"])
    row = tiny.iloc[0]
    assert row["n"] == 3 and np.isnan(row["ci_low"]) and np.isnan(row["ci_high"]) and row["ci_note"] == "n < 5"


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson_interval(8, 10)  # Wilson 1927; e.g. Newcombe 1998, Table I: 0.4902-0.9433
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    table = pd.DataFrame({"metric": "face_detected", "value": [1.0] * 8 + [0.0] * 2, "g": "x"})
    row = summarize(table, ["g"]).iloc[0]
    assert row["ci_method"] == "Wilson" and round(row["ci_low"], 4) == 0.4902


def test_hierarchical_bootstrap_covers_between_identity_noise():
    """Five people whose mean differs a lot, many images each: resampling images alone gives a CI far
    too narrow; resampling identities first gives one about as wide as the spread of the people."""
    rng = np.random.default_rng(0)
    rows = []
    for person, offset in enumerate([-0.2, -0.1, 0.0, 0.1, 0.2]):
        for replicate in range(2):
            for _ in range(20):
                rows.append({"identity": f"p{person}", "replicate": replicate, "metric": "test_facesim",
                             "value": 0.5 + offset + rng.normal(0, 0.01), "g": "all"})
    table = pd.DataFrame(rows)
    _, low, high = hierarchical_bootstrap(table, ["identity", "replicate"])
    naive = np.quantile([table["value"].sample(frac=1, replace=True, random_state=k).mean() for k in range(500)],
                        [0.025, 0.975])
    assert (high - low) > 5 * (naive[1] - naive[0])
    assert 0.15 < high - low < 0.4
    row = summarize(table, ["g"]).iloc[0]
    assert row["ci_method"] == "hierarchical bootstrap over identity, replicate, images"


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([0.01, float("nan")])[1])


def test_sign_flip_p_values_are_calibrated_under_the_null_and_small_for_a_real_difference():
    from workbench.metrics.aggregate import sign_flip_p

    rng = np.random.default_rng(5)
    nulls = [sign_flip_p(pd.DataFrame({"value": rng.normal(0, 1, 24)}), seed=k, n_permutations=2000)
             for k in range(200)]
    assert 0.01 <= np.mean(np.array(nulls) < 0.05) <= 0.10  # about 5 % false positives
    real = paired_difference(grid(delta=0.05), "test_facesim", "arm", "a", "b")
    assert real["p_value"] < 0.001


def test_a_factor_that_differs_between_the_arms_is_refused_by_name_or_dropped_knowingly():
    """euler at seed 0 against dpmpp_2m at seed 1 once paired across seeds without a word."""
    table = grid().query("recognizer == 'dlib' and steps == 20").copy()
    table["sampler"] = table["arm"].map({"a": "euler", "b": "dpmpp_2m"})
    table.loc[table.sampler == "dpmpp_2m", "seed"] += 100
    with pytest.raises(WorkbenchError, match=r"differ in 'seed' \(0, 1, 2 \.\.\. against 100, 101, 102 \.\.\.\)"):
        paired_difference(table.drop(columns=["arm"]), "test_facesim", "sampler", "euler", "dpmpp_2m")
    one_seed = table[table.seed.isin([0, 100])].drop(columns=["arm"])  # one image per prompt on each side
    knowingly = paired_difference(one_seed, "test_facesim", "sampler", "euler", "dpmpp_2m", drop=["seed"])
    assert knowingly["dropped"] == "seed" and "seed" not in knowingly["pair_on"].split(", ")
    assert knowingly["n_pairs"] == 3


def test_a_report_shows_measured_rows_and_names_the_rest_once():
    from workbench.report import measured_rows

    summary = pd.DataFrame([
        {"sampler": "euler", "steps": 4.0, "metric": "sharpness", "n": 4, "mean": 1700.2, "ci_low": None,
         "ci_high": None},
        {"sampler": "euler", "steps": 4.0, "metric": "test_facesim", "n": 0, "mean": None, "ci_low": None,
         "ci_high": None},
        {"sampler": None, "steps": None, "metric": "copy_paste_gap_real", "n": 0, "mean": None, "ci_low": None,
         "ci_high": None},
        {"sampler": "euler", "steps": 8.0, "metric": "test_facesim", "n": 5, "mean": 0.41, "ci_low": 0.3,
         "ci_high": 0.5},
    ])
    shown, unmeasured = measured_rows(summary)
    assert list(shown["metric"]) == ["sharpness", "test_facesim"] and unmeasured == ["copy_paste_gap_real"]
    assert list(shown["steps"]) == [4, 8] and str(shown["steps"].dtype) == "Int64"
    assert "4.000" not in shown.to_html(float_format=lambda v: f"{v:.3f}")
    assert shown["mean"].tolist() == [1700.2, 0.41]  # values are not rounded to integers
