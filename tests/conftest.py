from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import Settings

ROOT = Path(__file__).resolve().parent.parent
FACES = ROOT / "datasets" / "sample-selfies"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def settings(session_home) -> Settings:
    return Settings(home=session_home, device="cpu", offline=True)


@pytest.fixture(scope="session")
def analyzer():
    from workbench.faces import get_analyzer

    return get_analyzer()


@pytest.fixture(scope="session")
def tiny_likeness(settings, analyzer, tmp_path_factory):
    """One tiny-sd likeness shared by the generation and scoring tests."""
    from workbench.likeness import train_likeness

    out = tmp_path_factory.mktemp("likeness") / "subject1"
    return train_likeness(FACES / "aws_rek_subject1", out, family="tiny-sd", settings=settings,
                          analyzer=analyzer, progress=False, steps=6)


@pytest.fixture
def cli(monkeypatch, capsys):
    """The ``workbench`` command run in this process (its ``main``, as the console script runs it), in a
    workspace ``home``: ``cli(home, "likeness", "show", path) -> (exit code, stdout, stderr)``."""
    import sys

    from workbench import cli as command

    def run(home, *argv) -> tuple[int, str, str]:
        monkeypatch.setenv("WORKBENCH_HOME", str(home))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("WORKBENCH_DEVICE", "cpu")
        monkeypatch.setattr(sys, "argv", ["workbench", *map(str, argv)])
        capsys.readouterr()
        try:
            command.main()
            code = 0
        except SystemExit as stopped:
            code = stopped.code or 0
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def pytest_collection_modifyitems(config, items):
    """GPU tests are opt-in: ``WORKBENCH_GPU_TESTS=1`` on a machine with CUDA (they need a real device)."""
    import os

    if os.environ.get("WORKBENCH_GPU_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="GPU test: set WORKBENCH_GPU_TESTS=1 on a machine with CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
