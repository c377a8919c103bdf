"""Names are never paths. Every name a user, a spec or a pack gives (likeness, run, study, suite, prompt
id, identity, user) passes ``check_name`` before it becomes part of a path, and every path built from one
is checked to stay inside its root with ``inside``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def slug(value: str) -> str:
    """A safe name made from any text (for suggestions and display-to-folder mapping)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-._")
    return text[:64] or "unnamed"


def check_name(value: object, kind: str) -> str:
    """``value`` if it is a safe name, else a ConfigError saying what a name may hold."""
    text = str(value)
    if NAME.match(text) and ".." not in text:
        return text
    raise ConfigError(f"{kind} {text!r} is not a valid name ({RULE}); try {slug(text)!r}.")


def folder_name(value: str) -> str:
    """A collision-free folder name for free text (a signed-in user's name): the text itself when it
    is already safe, else its slug plus a hash of the original ("b ob" and "b_ob" stay apart)."""
    if NAME.match(value) and ".." not in value:
        return value
    return f"{slug(value)[:48]}-{hashlib.sha256(value.encode()).hexdigest()[:10]}"


def inside(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved, or a ConfigError when it leaves ``root`` (through '..', an absolute path or a link)."""
    root_resolved, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise ConfigError(f"{path} is outside {root}; refused.")
    return resolved
