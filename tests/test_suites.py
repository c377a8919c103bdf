"""QA suites from evaluation/suites: the shipped example passes from an empty workspace, the failing one
exits 1 naming the threshold; spec errors name file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import ConfigError
from workbench.studies.suites import Threshold, evaluate, load_suite, run_suite

SUITES = Path(__file__).resolve().parent.parent / "evaluation" / "suites"


def test_every_shipped_suite_validates():
    names = {load_suite(path).name for path in sorted(SUITES.glob("*.yaml"))}
    assert {"tiny-demo", "tiny-expects-faces", "real-sdxl-headshots"} <= names


def test_example_suite_passes_from_an_empty_workspace(settings, tmp_path):
    from dataclasses import replace

    heard = []  # the app's job hears training steps and images through this (its cancel points)
    result = run_suite(SUITES / "tiny-demo.yaml", settings=replace(settings, home=tmp_path / "home"), progress=False,
                       callback=lambda done, total, unit, **info: heard.append((unit, done, total)))
    assert result.passed, [c["message"] for c in result.checks]
    assert {"step", "image"} <= {unit for unit, _, _ in heard}
    assert ("image", heard[-1][2], heard[-1][2]) == heard[-1]  # images counted to the last one
    assert len(result.checks) == 4 and Path(result.report).is_file()
    assert (tmp_path / "home" / "reports" / "suite-tiny-demo" / "checks.parquet").is_file()


@pytest.mark.slow
def test_failing_suite_exits_1_and_names_the_threshold(tmp_path):
    env = {"WORKBENCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "WORKBENCH_DEVICE": "cpu",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "suite", str(SUITES / "tiny-expects-faces.yaml")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "FAIL  face_detected mean = 0.000: FAILED, 0.000 < 0.9 (min)" in done.stdout
    assert "test_facesim mean: no values (no face detected)" in done.stdout


def test_threshold_arithmetic():
    scores = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "metric": ["sharpness"] * 4, "value": [0.2, 0.4, 0.6, 0.8],
                           "reason": [None] * 4, "pack": "p", "prompt_id": "x", "seed": [0, 1, 2, 3]})
    assert evaluate(Threshold(metric="sharpness", min=0.4, max=0.6), scores, None)["passed"]
    failed = evaluate(Threshold(metric="sharpness", min=0.6), scores, None)
    assert not failed["passed"] and "0.500 < 0.6 (min)" in failed["message"]
    better = scores.assign(value=scores.value + 0.1)
    diff = evaluate(Threshold(metric="sharpness", vs_baseline=True, min=0.09, max=0.11), better, scores)
    assert diff["passed"] and abs(diff["value"] - 0.1) < 1e-9
    assert "no such metric" in evaluate(Threshold(metric="test_facesim"), scores, None)["message"]


def test_broken_suite_names_file_and_field(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nselfies: s\nrecognizers: [dlib]\n"
                    "thresholds:\n  - {metric: face_detected, stat: median}\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: thresholds.0.stat"):
        load_suite(path)


def test_a_misspelled_metric_or_an_unpinned_recognizer_fails_at_load(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\nselfies: s\nrecognizers: [dlib]\nthresholds:\n  - {metric: test_facesmi, min: 0.3}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: thresholds: .*unknown metric 'test_facesmi'.*Did you mean "
                                          r"'test_facesim'"):
        load_suite(typo)
    auto = tmp_path / "auto.yaml"
    auto.write_text("name: x\nselfies: s\nthresholds:\n  - {metric: test_facesim, min: 0.3}\n")
    with pytest.raises(ConfigError, match="names its recognizer"):
        load_suite(auto)


def test_copy_paste_threshold_compares_with_the_real_photos_gap():
    gen = pd.DataFrame({"image_id": list("abcdef"), "metric": "copy_paste_gap", "value": [0.30] * 6})
    real = pd.DataFrame({"image_id": None, "metric": "copy_paste_gap_real", "value": [0.10] * 5})
    scores = pd.concat([gen, real], ignore_index=True)
    check = evaluate(Threshold(metric="copy_paste_gap", vs_real=True, max=0.05), scores, None)
    assert not check["passed"] and check["value"] == pytest.approx(0.20) and "vs real photos" in check["check"]
    fine = scores.assign(value=[0.12] * 6 + [0.10] * 5)
    assert evaluate(Threshold(metric="copy_paste_gap", vs_real=True, max=0.05), fine, None)["passed"]
