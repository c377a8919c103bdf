"""Likeness Workbench: check selfies, train a likeness (LoRA), generate style packs, measure identity.

The public API, the one the CLI, the app, the notebooks, studies and suites build on::

    from workbench import check_selfies, train_likeness, generate, score, summarize

Names load lazily, so ``import workbench`` stays cheap (no torch until a stage needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "check_selfies": "workbench.selfies", "train_likeness": "workbench.likeness", "generate": "workbench.generate",
    "score": "workbench.metrics", "summarize": "workbench.metrics", "paired_difference": "workbench.metrics",
    "run_study": "workbench.studies", "run_suite": "workbench.suites", "Settings": "workbench.config",
    "Likeness": "workbench.likeness", "GenerationRun": "workbench.generate", "CheckReport": "workbench.selfies",
    "FAMILIES": "workbench.models", "SAMPLERS": "workbench.generate", "METRICS": "workbench.metrics.registry",
    "STUDY_KINDS": "workbench.studies.kinds", "RECOGNIZERS": "workbench.faces", "get_analyzer": "workbench.faces",
}
__all__ = sorted([*_WHERE, "load_likeness", "load_run"])


def load_likeness(path) -> Any:
    """A finished likeness folder (``likeness.json`` + ``lora.safetensors``)."""
    from .likeness import Likeness

    return Likeness.load(path)


def load_run(path) -> Any:
    """A generation run folder (``images.parquet`` + PNGs)."""
    from .generate import GenerationRun

    return GenerationRun.load(path)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
