"""The spine end to end through the CLI, and the CLI's behaviour on user errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from workbench.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_demo_writes_a_report(tmp_path):
    result = runner.invoke(app, ["demo", "--home", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = tmp_path / "reports" / "demo-aws_rek_subject1-tiny-sd"
    html = (report / "index.html").read_text()
    markdown = (report / "report.md").read_text()
    for page in (html, markdown):
        assert "TINY MODEL" in page and "Selfie check" in page and "Generated images" in page
        assert "tiny-sd" in page and "dlib-resnet" in page and "test_facesim" in page
        assert "Metrics: direction and definition" in page and "higher is better" in page
        assert "No value in any group: " in page and "clip_score" in page.split("No value in any group: ")[1][:400]
    assert "<td>4</td>" in html and "<td>4.000</td>" not in html  # steps are whole numbers
    why = html.split("Missing values and why")[1]
    assert "fid_clip" in why and "face_div_aligned" in why  # group- and run-level measures say why too
    assert html.count("<figure>") == 2 * 2 * 2 * 2  # 2 prompts x 2 samplers x 2 steps x 2 seeds
    assert "08.jpg" in html  # the check table lists each selfie
    run = tmp_path / "runs" / "demo-aws_rek_subject1-tiny-sd"
    assert len(pd.read_parquet(run / "images.parquet")) == 16
    assert not pd.read_parquet(run / "scores.parquet").empty
    again = runner.invoke(app, ["demo", "--home", str(tmp_path)], catch_exceptions=False)
    assert again.exit_code == 0  # a second run reuses every finished stage


def test_user_errors_are_one_line_and_nonzero(tmp_path):
    result = subprocess.run([sys.executable, "-c", "from workbench.cli import main; main()", "check",
                             str(tmp_path / "missing")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_training_option_is_one_line_and_touches_nothing(tmp_path, faces_dir):
    out = tmp_path / "lk"
    result = subprocess.run([sys.executable, "-c", "from workbench.cli import main; main()", "train",
                             str(faces_dir / "aws_rek_subject1"), "--out", str(out), "--precision", "fp64",
                             "--attention", "flash", "--home", str(tmp_path / "home")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: training options: precision: Input should be 'fp16', 'bf16' or 'fp32' (got 'fp64'); "
        "attention: Input should be 'auto', 'no-cudnn' or 'math' (got 'flash')."]
    assert not out.exists()


def test_help_on_every_command():
    for command in (["--help"], ["demo", "--help"], ["check", "--help"], ["train", "--help"],
                    ["generate", "--help"], ["score", "--help"], ["models", "--help"], ["memory", "--help"],
                    ["packs", "list", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_models_and_packs_commands(tmp_path):
    result = runner.invoke(app, ["models", "--home", str(tmp_path)])
    assert result.exit_code == 0 and "not downloaded" in result.output and "Non-Commercial" in result.output
    result = runner.invoke(app, ["packs", "list"])
    assert result.exit_code == 0 and "corporate-headshot" in result.output


def test_faces_list_says_what_runs_where(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))  # no pack there: insightface reports missing
    result = runner.invoke(app, ["faces", "list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "dlib         ready" in result.output and "runs on: CPU" in result.output
    assert "insightface  missing" in result.output and "curl -LO" in result.output
