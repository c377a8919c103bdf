"""The built wheel works installed, from any directory: samples, specs and calibrations come with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_runs_the_demo(tmp_path):
    wheels, prefix, elsewhere = tmp_path / "wheels", tmp_path / "prefix", tmp_path / "elsewhere"
    source = tmp_path / "source"  # build from a copy: a build in the checkout leaves build/ and egg-info there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "workspace", "test-artifacts",
                                                                "build", "*.egg-info", ".whl", ".gpu", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, timeout=300)
    wheel = next(wheels.glob("likeness_workbench-*.whl"))
    # --target, not --prefix: pip would uninstall the environment's own (editable) copy first
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(prefix), str(wheel)],
                   check=True, timeout=300)
    elsewhere.mkdir()
    site = prefix
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "WORKBENCH_DEVICE": "cpu",
           "WORKBENCH_HOME": str(elsewhere / "workspace")}
    env.pop("WORKBENCH_RESOURCES", None)
    where = subprocess.run([sys.executable, "-c", "import workbench, workbench.resources as r; "
                            "print(workbench.__file__); print(r.root()); print(r.spec_path('tiny-demo', 'suite')); "
                            "print(r.spec_path('upload-quality-tiny', 'study'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(str(prefix) in line for line in where), where  # the installed copy, not the checkout
    demo = subprocess.run([sys.executable, "-m", "workbench.cli", "demo"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (elsewhere / "workspace" / "reports" / "demo-aws_rek_subject1-tiny-sd" / "index.html").is_file()
