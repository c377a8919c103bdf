"""Delete a person's data for real: a selfie set, likeness, run, study or report, and with ``cascade``
everything derived from it, with a receipt of every file removed and of what could not be. Also a sweep
of what is older than a given age. Only paths inside the workspace are touched.

The order is what makes a delete stick: 1. find what goes (the target, and with ``cascade`` every stage
whose links or inputs reach it); 2. cancel every job writing any of it and wait until it has stopped
(a running training would otherwise write its LoRA again a minute later); 3. remove each folder while
holding its lock. Lineage comes from the manifests: ``links`` (relative to the stage, so a moved
workspace still cascades) and, for manifests written before links, absolute paths in ``inputs``. A
single-file artifact (a check report written as HTML or JSON) has a ``<file>.manifest.json`` sidecar.
A manifest that cannot be read is reported in the receipt and stops nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, WorkbenchError
from .lineage import resolve_link
from .locks import FolderBusy, folder_lock
from .names import inside
from .store import MANIFEST, Manifest, read_manifest

SIDECAR = ".manifest.json"  # <file>.manifest.json: the manifest of a single-file artifact
WAIT_FOR_JOBS = 120.0  # seconds a delete waits for a cancelled job to stop (it stops between steps)


@dataclass
class Receipt:
    removed_files: list[str] = field(default_factory=list)
    removed_folders: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # could not be removed, with why
    problems: list[str] = field(default_factory=list)  # unreadable manifests: reported, never blocking
    cancelled_jobs: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"cancelled job {j}" for j in self.cancelled_jobs] + [f"removed {p}" for p in self.removed_files]
                + [f"removed folder {p}" for p in self.removed_folders] + [f"not removed {p}" for p in self.skipped]
                + [f"unreadable manifest {p}" for p in self.problems])

    def add(self, other: Receipt) -> None:
        for name in ("removed_files", "removed_folders", "skipped", "problems", "cancelled_jobs"):
            getattr(self, name).extend(x for x in getattr(other, name) if x not in getattr(self, name))


def _artifact_of(manifest_path: Path) -> Path:
    """The stage a manifest describes: its folder, or the file beside a sidecar."""
    if manifest_path.name == MANIFEST:
        return manifest_path.parent
    return manifest_path.with_name(manifest_path.name.removesuffix(SIDECAR))


def write_sidecar(artifact: str | os.PathLike, manifest: Manifest) -> Path:
    """The manifest of a single-file artifact (``<file>.manifest.json``), so a delete finds the file."""
    from .store import atomic_write_text, now

    manifest.updated = now()
    artifact = Path(artifact)
    return atomic_write_text(artifact.with_name(artifact.name + SIDECAR), manifest.model_dump_json(indent=2) + "\n")


def _read(manifest_path: Path) -> Manifest | None:
    if manifest_path.name == MANIFEST:
        return read_manifest(manifest_path.parent)
    from .errors import ArtifactError

    try:
        return Manifest.model_validate_json(manifest_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path}: not a manifest the workbench can read ({type(exc).__name__}).") from None


def stages(home: Path, problems: list[str] | None = None) -> dict[Path, Manifest]:
    """Every stage (a folder with a manifest, or a file with a sidecar) in the workspace; built models
    excluded. An unreadable manifest is added to ``problems`` and skipped."""
    found = {}
    manifests = [p for p in home.rglob(f"*{SIDECAR}") if not p.is_symlink()]
    for path in sorted(set(manifests) | {p for p in home.rglob(MANIFEST) if not p.is_symlink()}):
        if (home / "models") in path.parents or not (path.name == MANIFEST or path.name.endswith(SIDECAR)):
            continue
        try:
            loaded = _read(path)
        except WorkbenchError as exc:
            if problems is not None:
                problems.append(str(exc))
            continue
        if loaded is not None:
            found[_artifact_of(path).resolve()] = loaded
    return found


def _paths(value: Any) -> list[Path]:
    """Absolute paths anywhere in a manifest's inputs (how stages linked before ``links``)."""
    if isinstance(value, str) and value.startswith(os.sep):
        return [Path(value)]
    if isinstance(value, dict):
        return [p for v in (*value.keys(), *value.values()) for p in _paths(v)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths(v)]
    return []


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def sources(stage: Path, manifest: Manifest) -> list[Path]:
    """What ``stage`` was made from: its links, resolved from where it is now, and legacy absolute inputs."""
    base = stage if (stage / MANIFEST).is_file() else stage.parent  # a sidecar's links start beside its file
    return [resolve_link(v, base) for v in manifest.links.values()] + [Path(os.path.normpath(p))
                                                                      for p in _paths(manifest.inputs)]


def dependents(target: Path, all_stages: dict[Path, Manifest]) -> list[Path]:
    """Stages derived from ``target``, transitively: made from it or from a part of it, or, when the target
    is one photo, from the set that holds it."""
    part = target.is_file()
    doomed, changed = {target}, True
    while changed:
        changed = False
        for stage, manifest in all_stages.items():
            if any(_within(stage, d) for d in doomed):
                continue
            if any(_within(p, d) or (part and d == target and _within(d, p))
                   for p in sources(stage, manifest) for d in doomed):
                doomed.add(stage)
                changed = True
    return sorted(doomed - {target})


def _job_homes(home: Path) -> list[Path]:
    """Every workspace home with jobs under ``home`` (the app keeps one per signed-in user)."""
    return sorted({p.parent.parent for p in home.rglob("jobs/*/job.json")} | {home})


def stop_writers(paths: list[Path], home: Path, receipt: Receipt, wait: float = WAIT_FOR_JOBS) -> None:
    """Cancel every unfinished job that writes any of ``paths`` and wait until each has stopped."""
    from .jobs import Jobs

    waiting = []
    for job_home in _job_homes(home):
        jobs = Jobs(job_home)
        for record in jobs.writing(paths):
            jobs.cancel(record.id)
            receipt.cancelled_jobs.append(f"{record.title} ({record.id})")
            waiting.append((jobs, record.id))
    deadline = time.monotonic() + wait
    for jobs, job_id in waiting:
        jobs.wait(job_id, max(0.0, deadline - time.monotonic()))


def _files(path: Path) -> list[Path]:
    if path.is_file() or path.is_symlink():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())


def _remove(path: Path, receipt: Receipt, wait: float) -> None:
    """Remove a stage (folder or file) while holding its folder's lock: never under a running writer."""
    sidecar = path.with_name(path.name + SIDECAR)
    files = _files(path) + ([sidecar] if sidecar.is_file() else [])
    if path.is_dir() and not path.is_symlink():
        try:
            with folder_lock(path, wait=wait):
                shutil.rmtree(path)
        except FolderBusy as busy:
            receipt.skipped.append(f"{path} ({busy})")
            return
        except OSError as exc:
            receipt.skipped.append(f"{path} ({exc})")
            return
        receipt.removed_folders.append(str(path))
    else:
        path.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    receipt.removed_files += [str(p) for p in files]


def plan(target: str | os.PathLike, home: str | os.PathLike, cascade: bool = False,
         receipt: Receipt | None = None) -> list[Path]:
    """What ``delete`` would remove: the target and, with ``cascade``, what was made from it."""
    home = Path(home).resolve()
    target = inside(home, Path(target).absolute())
    if target == home or target == home / "models":
        raise ConfigError(f"{target}: refusing to delete the whole workspace or its models; name a set, likeness, "
                          "run or study.")
    if not target.exists() and not target.is_symlink():
        raise ConfigError(f"{target}: nothing to delete.")
    problems = receipt.problems if receipt is not None else None
    return [target] + (dependents(target, stages(home, problems)) if cascade else [])


def delete(target: str | os.PathLike, home: str | os.PathLike, cascade: bool = False, dry_run: bool = False,
           wait: float = WAIT_FOR_JOBS) -> Receipt:
    """Remove ``target`` (a folder or file inside the workspace) and, with ``cascade``, its dependents. Jobs
    writing any of it are cancelled first and waited for (``wait`` seconds at most)."""
    receipt = Receipt()
    home = Path(home).resolve()
    doomed = plan(target, home, cascade, receipt)
    if dry_run:
        receipt.removed_files = [str(p) for path in doomed for p in _files(path)]
        return receipt
    stop_writers(doomed, home, receipt, wait)
    for path in doomed:
        if path.exists() or path.is_symlink():
            _remove(path, receipt, wait=min(wait, 10.0))
    return receipt


def replace(folder: str | os.PathLike, home: str | os.PathLike, kind: str) -> Receipt:
    """Clear ``folder`` (a ``kind`` stage: its manifest says so) for new work: the folder and, when it is in
    the workspace, what was made from it. Refuses a folder that is not a workbench stage."""
    folder = Path(folder).absolute()
    manifest = read_manifest(folder)
    if manifest is None or manifest.kind != kind:
        raise ConfigError(f"{folder}: not a {kind} folder; refusing to replace it. Choose another --out.")
    home = Path(home).resolve()
    try:
        inside(home, folder)
    except ConfigError:  # outside the workspace: nothing there was derived from it by the workbench's record
        receipt = Receipt()
        stop_writers([folder.resolve()], home, receipt)
        _remove(folder.resolve(), receipt, wait=10.0)
        return receipt
    return delete(folder, home, cascade=True)


def parse_age(text: str) -> float:
    """'30d', '12h', '90m' -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhm])", text.strip())
    if not match:
        raise ConfigError(f"--older-than {text!r}: expected a number and d, h or m (e.g. 30d).")
    return float(match.group(1)) * {"d": 86400, "h": 3600, "m": 60}[match.group(2)]


def raw_sets(home: Path) -> dict[Path, float]:
    """Selfie sets without a manifest (uploads, copied folders), with their age: their newest file's."""
    found = {}
    for area in [home / "selfie-sets", *home.glob("users/*/selfie-sets")]:
        if not area.is_dir():
            continue
        for folder in area.iterdir():
            if folder.is_dir() and not folder.is_symlink() and not (folder / MANIFEST).exists():
                times = [p.lstat().st_mtime for p in _files(folder)] or [folder.lstat().st_mtime]
                found[folder.resolve()] = max(times)
    return found


def sweep(home: str | os.PathLike, older_than: str, dry_run: bool = False) -> Receipt:
    """Delete every stage whose manifest was last written longer ago than ``older_than``, every selfie set
    whose newest photo is older than that, and what was derived from them."""
    from datetime import datetime

    home = Path(home).resolve()
    cutoff = time.time() - parse_age(older_than)
    receipt = Receipt()
    all_stages = stages(home, receipt.problems)
    old = [folder for folder, manifest in all_stages.items()
           if datetime.fromisoformat(manifest.updated).timestamp() < cutoff]
    old += [folder for folder, newest in raw_sets(home).items() if newest < cutoff]
    outermost = [f for f in old if not any(o != f and _within(f, o) for o in old)]
    for folder in outermost:
        if folder.exists():
            part = delete(folder, home, cascade=True, dry_run=dry_run)
            receipt.add(part)
    return receipt


def wipe(home: str | os.PathLike, copies_of: Callable[[list[Path]], Iterable[Path]] | None = None,
         wait: float = WAIT_FOR_JOBS) -> Receipt:
    """Remove a person's whole workspace ``home`` (the app's "Delete my data"): 1. cancel every job of it and
    wait until each has stopped; 2. remove every stage under its lock, then the rest; 3. remove the copies
    made for the person outside it: ``copies_of(their files)`` names them exactly (the app: their pending
    uploads and the temporary copies Gradio made of their files), so no one else's file is touched."""
    from .jobs import Jobs

    home = Path(home).resolve()
    receipt = Receipt()
    if not home.is_dir():
        return receipt
    jobs = Jobs(home)
    running = [r for r in jobs.list() if not r.finished]
    for record in running:
        jobs.cancel(record.id)
        receipt.cancelled_jobs.append(f"{record.title} ({record.id})")
    deadline = time.monotonic() + wait
    for record in running:
        jobs.wait(record.id, max(0.0, deadline - time.monotonic()))
    theirs = [p for p in _files(home) if p.is_file() and not p.is_symlink()]
    copies = [Path(p) for p in copies_of(theirs)] if copies_of else []
    for stage in sorted(stages(home, receipt.problems), key=lambda p: -len(p.parts)):
        if stage.exists():
            _remove(stage, receipt, wait=min(wait, 10.0))
    leftovers = _files(home)
    try:
        shutil.rmtree(home)
        receipt.removed_files += [str(p) for p in leftovers]
        receipt.removed_folders.append(str(home))
    except OSError as exc:
        receipt.skipped.append(f"{home} ({exc})")
    for path in copies:
        if path.is_file() and not path.is_symlink():
            path.unlink()
            receipt.removed_files.append(str(path))
            with contextlib.suppress(OSError):  # Gradio keeps each file in a folder of its own
                path.parent.rmdir()
    return receipt
