"""What every tab shares: the user's own workspace, and turning workbench errors into ``gr.Error``."""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

import gradio as gr

from ..config import Settings
from ..errors import WorkbenchError


def user_settings(base: Settings, request: gr.Request | None) -> Settings:
    """Each signed-in user (``--auth``) gets ``<home>/users/<name>``; without auth (loopback, one
    person) everything is in ``<home>/users/local``."""
    name = getattr(request, "username", None) or "local"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "local"
    home = Path(base.home) / "users" / safe
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


def folders(root: Path, marker: str) -> list[str]:
    """Sub-folders of ``root`` holding ``marker`` (e.g. likeness.json), newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / marker).is_file()]
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
