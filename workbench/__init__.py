"""Likeness Workbench: check selfies, train a likeness (LoRA), generate style packs, measure identity.

The public API, the one the CLI, the app, the notebooks, studies and suites build on::

    from workbench import check_selfies, train_likeness, generate, score, summarize

``__all__`` lists it (docs/api.md shows each name with its docstring). Names load lazily, so
``import workbench`` stays cheap (no torch until a stage needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

# The documented API: name -> module (or (module, name in it)).
_PUBLIC = {
    # the stages, in the order data goes through them
    "check_selfies": "workbench.selfies",
    "degrade_set": "workbench.selfies.degrade",
    "train_likeness": "workbench.likeness",
    "generate": "workbench.generate",
    "contact_sheets": "workbench.generate.contact",
    "score": "workbench.metrics",
    "summarize": "workbench.metrics",
    "paired_difference": "workbench.metrics",
    "run_study": "workbench.studies",
    "design_check": "workbench.studies.design",
    "run_suite": "workbench.studies.suites",
    "run_demo": "workbench.demo",
    # what a stage would refuse, asked before it runs (the app asks at the click)
    "training_conflicts": "workbench.likeness.reuse",
    "generation_conflicts": "workbench.generate.runner",
    "check_limit": ("workbench.limits", "check_value"),
    "check_name": "workbench.names",
    # a person's data
    "delete_data": ("workbench.retention", "delete"),
    "sweep_data": ("workbench.retention", "sweep"),
    "wipe_data": ("workbench.retention", "wipe"),
    # reading and writing artifacts
    "load_likeness": ("workbench.likeness.card", "load_likeness"),
    "load_run": ("workbench.generate.runner", "load_run"),
    "read_check": "workbench.artifacts",
    "read_images": "workbench.artifacts",
    "read_scores": "workbench.artifacts",
    "read_favourites": "workbench.artifacts",
    "toggle_favourite": "workbench.artifacts",
    "save_check_file": "workbench.selfies.check",
    "write_check_html": ("workbench.selfies.html", "write_html"),
    "load_image": "workbench.images",
    "list_images": "workbench.images",
    # specs, packs, families, recognizers
    "load_spec": "workbench.studies",
    "load_suite": "workbench.studies.suites",
    "load_pack": "workbench.packs",
    "get_pack": "workbench.packs",
    "builtin_packs": "workbench.packs",
    "get_family": "workbench.models",
    "weights_status": "workbench.models",
    "memory_table": "workbench.likeness.memory",
    "get_analyzer": "workbench.faces",
    "verify_recognizer": ("workbench.faces.verify", "verify_folder"),
    "save_verification": "workbench.faces.verify",
    "calibrate_recognizer": ("workbench.faces.calibration", "calibrate"),
    "save_calibration": ("workbench.faces.calibration", "save"),
    "find_calibration": ("workbench.faces.calibration", "find"),
    "match_threshold": "workbench.faces.calibration",
    "metric_plot": "workbench.report",
    # long work
    "Jobs": "workbench.jobs",
    "describe_job": ("workbench.jobs", "describe"),
    "connect_ray": ("workbench.cluster", "connect"),
    # types
    "Settings": "workbench.config",
    "CheckReport": "workbench.selfies",
    "TrainConfig": "workbench.likeness",
    "Likeness": "workbench.likeness",
    "GenerationRun": "workbench.generate",
    "StudySpec": "workbench.studies",
    "StepExtras": "workbench.likeness.memory",
    # registries and tables (data)
    "FAMILIES": "workbench.models",
    "SAMPLERS": "workbench.generate",
    "ARMS": "workbench.arms",
    "METRICS": "workbench.metrics.registry",
    "RECOGNIZERS": "workbench.faces",
    "STUDY_KINDS": "workbench.studies.kinds",
    "DEGRADATION_KINDS": ("workbench.selfies.degradations", "KINDS"),
    "FLAG_PHRASES": "workbench.selfies.photo",
    "FMRS": "workbench.faces.calibration",
    "LIMITS": "workbench.limits",
    # errors a user can act on
    "WorkbenchError": "workbench.errors",
    "ConfigError": "workbench.errors",
    "ModelNotAvailable": "workbench.errors",
    "ArtifactError": "workbench.errors",
}
# What the workbench's own front ends (cli.py, app/) use besides the API: reachable here so they import
# from one place, not part of the API (helpers stay documented in their modules).
_FOR_FRONT_ENDS = {
    "describe_degradations": ("workbench.selfies.degradations", "describe"),
    "describe_study_kinds": ("workbench.studies.kinds", "describe_kinds"),
    "CARD_FILE": "workbench.artifacts",
    "IMAGES": "workbench.artifacts",
    "Workspace": "workbench.store",
    "configure_jobs": ("workbench.jobs", "configure"),
    "folder_name": "workbench.names",
    "folder_lock": "workbench.locks",
    "inside": "workbench.names",
    "is_done": "workbench.store",
    "measured_rows": "workbench.report",
    "parse_shard": "workbench.studies.runner",
    "suite_files": "workbench.studies.suites",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    where = _PUBLIC.get(name) or _FOR_FRONT_ENDS.get(name)
    if where is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    module, attr = where if isinstance(where, tuple) else (where, name)
    return getattr(importlib.import_module(module), attr)
