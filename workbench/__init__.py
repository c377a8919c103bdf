"""Likeness Workbench: check selfies, train a likeness (LoRA), generate style packs, measure identity.

The public API, the one the CLI, the app, the notebooks, studies and suites build on::

    from workbench import check_selfies, train_likeness, generate, score, summarize

Names load lazily, so ``import workbench`` stays cheap (no torch until a stage needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CheckReport": "workbench.selfies",
    "FAMILIES": "workbench.models",
    "GenerationRun": "workbench.generate",
    "Likeness": "workbench.likeness",
    "METRICS": "workbench.metrics.registry",
    "RECOGNIZERS": "workbench.faces",
    "SAMPLERS": "workbench.generate",
    "STUDY_KINDS": "workbench.studies.kinds",
    "StudySpec": "workbench.studies",
    "Settings": "workbench.config",
    "StepExtras": "workbench.likeness.memory",
    "check_selfies": "workbench.selfies",
    "generate": "workbench.generate",
    "get_analyzer": "workbench.faces",
    "paired_difference": "workbench.metrics",
    "run_study": "workbench.studies",
    "run_suite": "workbench.suites",
    "score": "workbench.metrics",
    "summarize": "workbench.metrics",
    "train_likeness": "workbench.likeness",
    "CARD_FILE": "workbench.artifacts",
    "ConfigError": "workbench.errors",
    "DEGRADATION_KINDS": ("workbench.selfies.degrade", "KINDS"),
    "FLAG_PHRASES": "workbench.selfies.photo",
    "FMRS": "workbench.faces.calibration",
    "IMAGES": "workbench.artifacts",
    "Jobs": "workbench.jobs",
    "ModelNotAvailable": "workbench.errors",
    "WorkbenchError": "workbench.errors",
    "Workspace": "workbench.store",
    "atomic_write_json": "workbench.store",
    "builtin_packs": "workbench.packs",
    "calibrate_recognizer": ("workbench.faces.calibration", "calibrate"),
    "check_name": "workbench.names",
    "connect_ray": ("workbench.cluster", "connect"),
    "contact_sheets": "workbench.generate.contact",
    "degrade_set": "workbench.selfies.degrade",
    "delete_data": ("workbench.retention", "delete"),
    "describe_job": ("workbench.jobs", "describe"),
    "find_calibration": ("workbench.faces.calibration", "find"),
    "folder_name": "workbench.names",
    "get_family": "workbench.models",
    "get_pack": "workbench.packs",
    "inside": "workbench.names",
    "is_done": "workbench.store",
    "list_images": "workbench.images",
    "load_image": "workbench.images",
    "load_pack": "workbench.packs",
    "load_spec": "workbench.studies",
    "load_suite": "workbench.suites",
    "match_threshold": "workbench.faces.calibration",
    "memory_table": "workbench.likeness.memory",
    "metric_plot": "workbench.report",
    "parse_shard": "workbench.studies.runner",
    "preload": "workbench.cluster",
    "read_check": "workbench.artifacts",
    "read_images": "workbench.artifacts",
    "read_manifest": "workbench.store",
    "read_scores": "workbench.artifacts",
    "read_favourites": "workbench.artifacts",
    "toggle_favourite": "workbench.artifacts",
    "FAVOURITES": "workbench.artifacts",
    "run_demo": "workbench.demo",
    "save_calibration": ("workbench.faces.calibration", "save"),
    "suite_files": "workbench.suites",
    "sweep_data": ("workbench.retention", "sweep"),
    "verify_recognizer": ("workbench.faces.verify", "verify_folder"),
    "save_verification": "workbench.faces.verify",
    "save_check_file": "workbench.selfies.check",
    "wipe_data": ("workbench.retention", "wipe"),
    "LIMITS": "workbench.limits",
    "check_limit": ("workbench.limits", "check_value"),
    "training_conflicts": "workbench.likeness.train",
    "generation_conflicts": "workbench.generate.runner",
    "ArtifactError": "workbench.errors",
    "TrainConfig": "workbench.likeness",
    "weights_status": "workbench.models",
    "write_check_html": ("workbench.selfies.html", "write_html"),
    "write_table": "workbench.store",
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
        module, attr = _WHERE[name] if isinstance(_WHERE[name], tuple) else (_WHERE[name], name)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
