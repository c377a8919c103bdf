"""Delete a person's data for real: a selfie set, likeness, run or study, and with ``cascade`` everything
derived from it (following the manifests' inputs), with a receipt of every file removed. Also a sweep of
stages older than a given age. Only paths inside the workspace are touched.

Lineage is read from the manifests: a stage depends on every path its ``inputs`` name (the selfie
folder, the photos of each split, the likeness, the run, a study's identity folders), so whatever a
future stage records as an input is followed without changes here.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .names import inside
from .store import MANIFEST, Manifest, folder_lock, read_manifest


@dataclass
class Receipt:
    removed_files: list[str] = field(default_factory=list)
    removed_folders: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"removed {p}" for p in self.removed_files] + [f"removed folder {p}" for p in self.removed_folders]
                + [f"skipped {p}" for p in self.skipped])


def stages(home: Path) -> dict[Path, Manifest]:
    """Every stage folder (holding a manifest) in the workspace, outermost first; built models excluded."""
    found = {}
    for manifest in sorted(home.rglob(MANIFEST)):
        folder = manifest.parent.resolve()
        if (home / "models") in folder.parents:
            continue
        loaded = read_manifest(folder)
        if loaded is not None:
            found[folder] = loaded
    return found


def _paths(value: Any) -> list[Path]:
    if isinstance(value, str) and value.startswith(os.sep):
        return [Path(value)]
    if isinstance(value, dict):
        return [p for v in (*value.keys(), *value.values()) for p in _paths(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths(v)]
    return []


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def dependents(target: Path, all_stages: dict[Path, Manifest]) -> list[Path]:
    """Stage folders derived from ``target``, transitively (a likeness from its selfies, a run from
    the likeness, a report from the run, ...)."""
    doomed, changed = {target}, True
    while changed:
        changed = False
        for folder, manifest in all_stages.items():
            if any(_within(folder, d) for d in doomed):
                continue
            if any(_within(p.resolve(), d) for p in _paths(manifest.inputs) for d in doomed):
                doomed.add(folder)
                changed = True
    return sorted(doomed - {target})


def delete(target: str | os.PathLike, home: str | os.PathLike, cascade: bool = False,
           dry_run: bool = False) -> Receipt:
    """Remove ``target`` (a folder or a photo inside the workspace) and, with ``cascade``, its dependents."""
    home = Path(home).resolve()
    target = inside(home, target)
    if target == home or target == home / "models":
        raise ConfigError(f"{target}: refusing to delete the whole workspace or its models; name a set, likeness, "
                          "run or study.")
    if not target.exists():
        raise ConfigError(f"{target}: nothing to delete.")
    doomed = [target] + (dependents(target, stages(home)) if cascade else [])
    receipt = Receipt()
    for path in doomed:
        if not path.exists():
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
        receipt.removed_files += [str(p) for p in files]
        if dry_run:
            continue
        if path.is_file():
            path.unlink()
            continue
        try:
            with folder_lock(path):  # never delete under a running writer
                pass
        except ConfigError as busy:
            receipt.skipped.append(f"{path} ({busy})")
            receipt.removed_files = [f for f in receipt.removed_files if not f.startswith(str(path))]
            continue
        shutil.rmtree(path)
        receipt.removed_folders.append(str(path))
    return receipt


def parse_age(text: str) -> float:
    """'30d', '12h', '90m' -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not match:
        raise ConfigError(f"--older-than {text!r}: expected a number and d, h or m (e.g. 30d).")
    return float(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]


def sweep(home: str | os.PathLike, older_than: str, dry_run: bool = False) -> Receipt:
    """Delete every stage whose manifest was last written longer ago than ``older_than``, and what was
    derived from it."""
    from datetime import datetime

    home = Path(home).resolve()
    cutoff = time.time() - parse_age(older_than)
    all_stages = stages(home)
    old = [folder for folder, manifest in all_stages.items()
           if datetime.fromisoformat(manifest.updated).timestamp() < cutoff]
    outermost = [f for f in old if not any(o != f and _within(f, o) for o in old)]
    receipt = Receipt()
    for folder in outermost:
        if folder.exists():
            part = delete(folder, home, cascade=True, dry_run=dry_run)
            receipt.removed_files += part.removed_files
            receipt.removed_folders += part.removed_folders
            receipt.skipped += part.skipped
    return receipt
