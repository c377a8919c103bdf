"""What every tab shares: the user's own workspace, and turning refusals into a message that changes nothing."""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

import gradio as gr

from workbench import LIMITS, Settings, WorkbenchError, check_name, folder_name, inside


def person_of_request(request: gr.Request | None) -> str:
    """The signed-in person's name (``--auth``); ``local`` for the one person of an app without it."""
    return getattr(request, "username", None) or "local"


def user_settings(base: Settings, request: gr.Request | None) -> Settings:
    """Each signed-in user (``--auth``) gets ``<home>/users/<name>``; without auth (loopback, one
    person) everything is in ``<home>/users/local``."""
    name = person_of_request(request)
    home = inside(Path(base.home) / "users", Path(base.home) / "users" / folder_name(name))
    home.mkdir(parents=True, exist_ok=True)
    return replace(base, home=home, models_dir=base.models)


PATH = re.compile(r"(?:/[\w.@+-]+)+/([\w.@+ ()-]+)")


def no_paths(text: str) -> str:
    """``text`` with every server path cut to its last part (an error from deep in a stage names files)."""
    return PATH.sub(lambda m: m.group(1), text or "")


def describe(record) -> str:
    """A job's line for the page: the workbench's description, without server paths."""
    from workbench import describe_job

    return no_paths(describe_job(record))


def friendly(fn):
    """A refusal (a ``gr.Error`` of the tab's own checks, or a ``WorkbenchError``: bad photo, missing weights,
    a number out of bounds) becomes a message in a popup, and the page stays as it was: Gradio would mark every
    output of a failed event "Error" and hide what they showed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (gr.Error, WorkbenchError) as exc:
            gr.Warning(no_paths(getattr(exc, "message", None) or str(exc)), duration=20)
            return gr.skip()

    return wrapper


def own(user, choice: str | None, area: str) -> Path | None:
    """An item of the user's own ``area`` (likenesses, runs, ...): by its name, as the page's menus send it,
    or by a path kept server-side (a ``gr.State``); anything outside the area is refused."""
    if not choice:
        return None
    root = Path(user.home) / area
    try:
        return inside(root, root / check_name(choice, "name") if "/" not in str(choice) else choice)
    except WorkbenchError as exc:
        raise gr.Error("That item is not in your workspace.") from exc


def names_in(root: Path, marker: str) -> list[str]:
    """The names of the sub-folders of ``root`` holding ``marker``, newest first: what a menu offers."""
    return [Path(p).name for p in folders(root, marker)]


def keep_choice(names: list[str], current: str | None) -> dict:
    """A menu's new choices, keeping the person's pick when it is still there (else the newest)."""
    return gr.update(choices=names, value=current if current in names else (names[0] if names else None))


def bounded(name: str) -> dict:
    """A number control's minimum and maximum: the CLI's bounds (workbench/limits.py)."""
    return {"minimum": LIMITS[name].low, "maximum": LIMITS[name].high}


SHOWN_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".zip", ".html"}  # what the app hands Gradio to show


def gradio_copies(files: list[Path]) -> list[Path]:
    """Where Gradio put its copy of each of these files when the app showed it (a gallery image, a zip, a
    report): its cache names a copy by the hash of its bytes, which is computed here the same way."""
    from gradio.processing_utils import hash_file
    from gradio.utils import get_upload_folder
    from gradio_client.utils import strip_invalid_filename_characters

    cache = Path(get_upload_folder())
    copies = []
    for path in files:
        if path.suffix.lower() in SHOWN_SUFFIXES and path.is_file():
            copy = cache / hash_file(path) / strip_invalid_filename_characters(path.name)
            if copy.is_file():
                copies.append(copy)
    return copies


def folders(root: Path, marker: str) -> list[str]:
    """Sub-folders of ``root`` holding ``marker`` (e.g. likeness.json), newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / marker).is_file()]
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
