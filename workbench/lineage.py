"""What an artifact was made from, and whether a folder may be reused for what is asked now.

Two records per stage (both in its manifest):
- **links**: the stages it was made from, as paths relative to its own folder, so a moved or copied
  workspace keeps them and a cascading delete follows them (``retention.py``);
- **content**: its inputs by content (a selfie set's photo hashes, a likeness's LoRA hash, family and base),
  so a folder resumes only the work it holds and refuses other work with a message naming the difference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .provenance import file_sha256


def link(target: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``target`` relative to ``folder`` (posix), the form stored in ``Manifest.links``."""
    return Path(os.path.relpath(Path(target).resolve(), Path(folder).resolve())).as_posix()


def resolve_link(value: str, folder: str | os.PathLike) -> Path:
    """A stored link back to a path (a relative link from ``folder``; an absolute one as it is)."""
    path = Path(value)
    return Path(os.path.normpath(path if path.is_absolute() else Path(folder).resolve() / path))


def photo_hashes(folder: str | os.PathLike) -> dict[str, str]:
    """Every photo of a selfie folder by content (file name -> sha256); links are not followed."""
    from .images import list_images

    return {p.name: file_sha256(p) for p in list_images(folder)}


def describe_photo_change(asked: dict[str, str], recorded: dict[str, str]) -> str | None:
    """None when both sets hold the same photos (by content, whatever their names); else what differs."""
    now, then = sorted(asked.values()), sorted(recorded.values())
    if now == then:
        return None
    new, gone = len(set(now) - set(then)), len(set(then) - set(now))
    return f"other photos ({new} of these {len(now)} are new to it; {gone} of its {len(then)} are not among them)"


def describe_changes(asked: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """``key was X (asked: Y)`` for every key asked for that differs from the record."""
    return [f"{key} was {recorded.get(key)!r} (asked: {value!r})" for key, value in asked.items()
            if recorded.get(key) != value]


class OtherInputs(ConfigError):
    """A folder holds an artifact made from other inputs than the ones asked for now."""


def refuse_other_inputs(out: Path, what: str, differences: list[str], replace_flag: str = "--replace") -> None:
    """One line naming what differs and the ways on: another folder, or an explicit replace."""
    if differences:
        raise OtherInputs(f"{out} holds another {what}: {'; '.join(differences)}. Write to another --out, or pass "
                          f"{replace_flag} to delete it (and what was made from it) first, with a receipt.")
