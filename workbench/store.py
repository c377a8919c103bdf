"""Run directories, manifests, atomic writes and Parquet tables.

Every stage writes a directory holding ``manifest.json`` and its artifacts. A manifest is written
atomically (temp file, fsync, rename), so a crash leaves either the old one or the new one, never
half of one; ``status`` tells a re-run what is already done.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from .errors import ArtifactError
from .locks import LOCK, FolderBusy, clean_stale_temporaries, folder_lock  # noqa: F401 (one writer per folder)
from .provenance import environment, file_sha256  # noqa: E402,F401  (re-exported: stages hash their inputs)

MANIFEST = "manifest.json"  # every stage folder's record (what it was given, how it ran, what it made)
TRACKED_PACKAGES = ("likeness-workbench", "torch", "diffusers", "transformers", "peft", "accelerate",
                    "torchmetrics", "dlib-bin", "onnxruntime", "pillow", "numpy", "pandas")


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# --- atomic writes -------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename it over ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Parquet, atomically. ``pandas.read_parquet(path)`` opens it."""
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_parquet(path)


# --- manifests -----------------------------------------------------------------------------------
class Manifest(BaseModel):
    """What a stage was given, how it was configured, what it made, and whether it finished."""

    kind: str
    schema_version: int = 1
    status: Literal["running", "done", "failed", "cancelled"] = "running"
    created: str = Field(default_factory=now)
    updated: str = Field(default_factory=now)
    inputs: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=package_versions)
    seeds: list[int] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    # The stages this one was made from, by role, as paths relative to this folder (``lineage.py``): a
    # moved or copied workspace keeps its links, and a cascading delete follows them.
    links: dict[str, str] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=lambda: environment())


def write_manifest(directory: str | os.PathLike, manifest: Manifest) -> Path:
    manifest.updated = now()
    manifest.environment = environment()  # torch and the GPU are known once the stage has loaded them
    return atomic_write_text(Path(directory) / MANIFEST, manifest.model_dump_json(indent=2) + "\n")


def read_manifest(directory: str | os.PathLike) -> Manifest | None:
    """The folder's manifest, None when it has none, or an ``ArtifactError`` naming the file when it is
    not one the workbench can read (cut short, edited by hand, another program's)."""
    path = Path(directory) / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValueError as exc:  # pydantic's ValidationError (bad JSON included) is a ValueError
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(map(str, first.get("loc", ()))) or "the file"
        raise ArtifactError(f"{path}: not a manifest the workbench can read ({where}: {first['msg']}); restore it, "
                            f"or remove the folder (`workbench delete {Path(directory)}`).") from None


def process_alive(pid: int) -> bool:
    """Whether a process of this host is still running (a permission error means it is)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def stage(directory: str | os.PathLike, manifest: Manifest):
    """Run a stage so that its manifest never stays ``running`` after it stops: an exception writes
    ``failed`` and the error, Ctrl-C (KeyboardInterrupt) ``cancelled``; then it propagates. A rerun
    resumes either way. The folder is locked while the stage runs (``folder_lock``)."""
    with folder_lock(directory):  # a second writer is refused before it touches anything
        try:
            yield manifest
        except BaseException as exc:
            manifest.status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            manifest.error = f"{type(exc).__name__}: {exc}"[:2000]
            if Path(directory).is_dir():
                write_manifest(directory, manifest)
            raise


def is_done(directory: str | os.PathLike) -> bool:
    manifest = read_manifest(directory)
    return manifest is not None and manifest.status == "done"


# --- the workspace -------------------------------------------------------------------------------
class Workspace:
    """``WORKBENCH_HOME`` laid out as selfie-sets/, likenesses/, runs/, reports/, models/."""

    AREAS = ("selfie-sets", "likenesses", "runs", "reports", "models")

    def __init__(self, home: str | os.PathLike):
        self.home = Path(home).expanduser().resolve()

    def area(self, name: str) -> Path:
        if name not in self.AREAS:
            raise ValueError(f"unknown workspace area {name!r}; expected one of {self.AREAS}")
        path = self.home / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def new_dir(self, area: str, name: str) -> Path:
        path = self.area(area) / name
        path.mkdir(parents=True, exist_ok=True)
        return path
