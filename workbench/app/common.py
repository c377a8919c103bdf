"""What every tab shares: the user's own workspace, and turning workbench errors into ``gr.Error``."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import gradio as gr

from workbench import LIMITS, Settings, WorkbenchError, folder_name, inside


def user_settings(base: Settings, request: gr.Request | None) -> Settings:
    """Each signed-in user (``--auth``) gets ``<home>/users/<name>``; without auth (loopback, one
    person) everything is in ``<home>/users/local``."""
    name = getattr(request, "username", None) or "local"
    home = inside(Path(base.home) / "users", Path(base.home) / "users" / folder_name(name))
    home.mkdir(parents=True, exist_ok=True)
    return replace(base, home=home, models_dir=base.models)


def friendly(fn):
    """A ``WorkbenchError`` (bad photo, missing weights, ...) becomes a readable ``gr.Error`` popup."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            raise gr.Error(str(exc)) from exc

    return wrapper


def own(user, choice: str | None, area: str) -> Path | None:
    """A path the browser sent back (a dropdown value), accepted only inside the user's own ``area``."""
    if not choice:
        return None
    try:
        return inside(Path(user.home) / area, choice)
    except WorkbenchError as exc:
        raise gr.Error("That item is not in your workspace.") from exc


def bounded(name: str) -> dict:
    """A number control's minimum and maximum: the CLI's bounds (workbench/limits.py)."""
    return {"minimum": LIMITS[name].low, "maximum": LIMITS[name].high}


def gradio_temp_folders() -> list[Path]:
    """Where Gradio keeps its copies of uploads and of the files the app returns (its cache)."""
    import os
    import tempfile

    return [Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")]


def folders(root: Path, marker: str) -> list[str]:
    """Sub-folders of ``root`` holding ``marker`` (e.g. likeness.json), newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / marker).is_file()]
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
