"""Experiment trackers researchers already use — TensorBoard (the offline default when installed),
MLflow, Weights & Biases, Trackio — through accelerate's trackers, so their own compare views work.

Training logs loss and learning rate per step, the checkpoint curve (validation FaceSim per probe) and
the probe images; a study logs one run per cell with its config and summary metrics. The tracker's run
id lands in ``likeness.json`` and in the study's manifest. MLflow writes to ``$MLFLOW_TRACKING_URI``,
or ``file:<workspace>/mlruns`` when that is not set.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError

TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}


def check_trackers(names: list[str] | str | None) -> list[str]:
    """Known and installed, or one error naming the extra to install."""
    names = [names] if isinstance(names, str) else list(names or [])
    for name in names:
        if name not in TRACKERS:
            from .errors import unknown_name

            raise unknown_name("tracker", name, TRACKERS)
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(f"--log-with {name}: the {name} package is not installed; `pip install "
                              f"'likeness-workbench[tracking]'` (or `pip install {TRACKERS[name]}`).")
    return names


def default_mlflow_uri(home: str | os.PathLike) -> None:
    """Without ``MLFLOW_TRACKING_URI``, runs go to a file store in the workspace (offline, no server).
    MLflow 3 keeps its file store in maintenance mode and asks for an explicit opt-in, given here for that
    default only; point ``MLFLOW_TRACKING_URI`` at a server or ``sqlite:///...`` for the database backend."""
    if "MLFLOW_TRACKING_URI" not in os.environ and importlib.util.find_spec("mlflow") is not None:
        import mlflow

        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((Path(home).resolve() / "mlruns").as_uri())


def hparams(config: dict[str, Any]) -> dict[str, Any]:
    """Scalars only (trackers reject lists and None)."""
    return {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))}


def run_ids(trackers: list) -> dict[str, str]:
    """Where each tracker put this run: a TensorBoard folder, an MLflow run id, a W&B run path."""
    ids = {}
    for tracker in trackers:
        name = getattr(tracker, "name", type(tracker).__name__)
        if name == "tensorboard":
            ids[name] = str(getattr(tracker, "logging_dir", ""))
        elif name == "mlflow" and getattr(tracker, "active_run", None) is not None:
            ids[name] = tracker.active_run.info.run_id
        elif name == "wandb" and getattr(tracker, "run", None) is not None:
            ids[name] = tracker.run.path
        else:
            ids[name] = str(getattr(tracker, "run_name", ""))
    return ids


def log_images(trackers: list, images: list, step: int) -> None:
    """Probe images to every tracker that takes images (TensorBoard as HWC arrays)."""
    import numpy as np

    arrays = [np.asarray(image.convert("RGB")) for image in images]
    for tracker in trackers:
        if not hasattr(tracker, "log_images"):
            continue
        if getattr(tracker, "name", "") == "tensorboard":
            tracker.log_images({"probes": np.stack(arrays)}, step=step, dataformats="NHWC")
        else:
            tracker.log_images({"probes": images}, step=step)


def log_cell(names: list[str], study: str, cell: str, logging_dir: str | os.PathLike, config: dict[str, Any],
             metrics: dict[str, float]) -> dict[str, str]:
    """One tracker run for a finished study cell: its config and summary metrics."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker

    ids: dict[str, str] = {}
    for name in check_trackers(names):
        if name == "tensorboard":
            tracker = TensorBoardTracker(f"{study}/{cell}", logging_dir)
        elif name == "mlflow":
            tracker = MLflowTracker(experiment_name=study, run_name=cell)
        else:
            from accelerate.tracking import LOGGER_TYPE_TO_CLASS

            tracker = LOGGER_TYPE_TO_CLASS[name](study, run_name=cell) if name == "wandb" else \
                LOGGER_TYPE_TO_CLASS[name](study)
        if hasattr(tracker, "start"):
            tracker.start()
        tracker.store_init_configuration(hparams(config))
        tracker.log({k: float(v) for k, v in metrics.items()}, step=0)
        ids.update(run_ids([tracker]))
        tracker.finish()
    return ids
