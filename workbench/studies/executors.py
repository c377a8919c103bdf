"""How a study's cells run: one after another in this process (``serial``), or as Ray tasks on one
machine or a cluster (``ray``).

With Ray each cell is a task asking for one GPU when the family needs one (CPU otherwise). Workers write
the cell's artifacts (likeness, images) into the workspace, which is therefore shared storage on a
multi-node cluster (NFS, or a bucket mounted with FUSE); the cell's scores come back to the driver,
which writes the cell's table and manifest — so a cell counts as done only once the driver has it.
The faces in each person's photos are found first, a task per photo so that the slow ones spread over
every worker; a person's cell tasks go in once their photos are done and no photo is left waiting for a
worker. The faces are arguments of those tasks (Ray hands them over), and each worker checks the
person's set from them once (``StudyKind.prepare_identity``; the faces, the expensive
part, are never found twice). The driver analyses no face and starts no face worker. Shared inputs (the
likenesses of a sampler-steps study) are built first, one task each. A task whose worker dies or raises
is retried ``max_retries`` times, then recorded as failed with its error while the other cells go on;
Ctrl-C cancels what is outstanding. Each worker process keeps the study kind (and so its loaded
pipeline) between the cells it runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..cluster import connect
from ..config import Settings
from .kinds import get_kind
from .kinds.base import Cell, StudyKind, by_identity
from .spec import StudySpec

CRASH_ONCE = "WORKBENCH_CRASH_ONCE"  # fault injection for the retry test: "<cell folder>=<marker file>"
_WORKER_KINDS: dict[str, StudyKind] = {}


def _kind_in_worker(spec_data: dict[str, Any], cells: list[Cell] | None = None, out: str = "",
                    found: tuple[dict, ...] = ()) -> StudyKind:
    """One study kind per worker process and spec, so a loaded pipeline serves several cells. For ``cells``
    (one person's) it takes the faces found in that person's photos (``found``) and, once per process,
    what ``prepare_identity`` makes of them. A task holds one CPU, so its face analysis stays in its own
    process (no face worker processes)."""
    from ..faces import get_analyzer
    from ..faces.parallel import WORKERS_ENV

    os.environ.setdefault(WORKERS_ENV, "1")
    key = repr((sorted(spec_data.items()), out))  # a rerun into another folder checks (and writes) afresh
    if key not in _WORKER_KINDS:
        spec = StudySpec.model_validate(spec_data)
        _WORKER_KINDS.clear()
        _WORKER_KINDS[key] = get_kind(spec.kind)(spec)
    kind = _WORKER_KINDS[key]
    if cells:
        for faces in found:
            get_analyzer(kind.spec.recognizers[0]).learn(faces)
        identity = cells[0].identity
        if identity not in kind.prepared:
            kind.adopt(identity, kind.prepare_identity(identity, cells, Path(out), False))
    return kind


def _maybe_crash(cell: Cell) -> None:
    planned = os.environ.get(CRASH_ONCE, "")
    folder, _, marker = planned.partition("=")
    if folder == cell.folder and marker and not Path(marker).exists():
        Path(marker).write_text("crashed once")
        os._exit(1)  # the worker process dies, as on a lost machine


def faces_task(spec_data: dict[str, Any], path: str) -> dict[str, Any]:
    """The faces in one of a person's photos (``StudyKind.face_photos``), for their cell tasks to adopt."""
    from ..faces import get_analyzer
    from ..faces.parallel import WORKERS_ENV
    from ..selfies.check import find_faces

    os.environ.setdefault(WORKERS_ENV, "1")
    return find_faces(path, get_analyzer(StudySpec.model_validate(spec_data).recognizers[0]))


def cells_task(spec_data: dict[str, Any], cells: list[Cell], out: str, settings: Settings, progress: bool,
               *found: dict):
    """One or more cells of one person in one worker (cells sharing a likeness: the pipeline loads once for
    all of them); each cell is timed in the worker, so queueing time never counts as the cell's."""
    kind = _kind_in_worker(spec_data, cells, out, found)
    results = []
    for cell in cells:
        _maybe_crash(cell)
        started = time.perf_counter()
        table = kind.run_cell(cell, Path(out) / "cells" / cell.folder, Path(out), settings, progress)
        results.append((cell, table, time.perf_counter() - started))
    return results


def shared_task(spec_data: dict[str, Any], key: tuple, cells: list[Cell], out: str, settings: Settings,
                progress: bool, *found: dict) -> str:
    _kind_in_worker(spec_data, cells, out, found).build_shared(key, Path(out), settings, progress)
    return "ok"


def _drain(ray, batches: list[list[Cell]], spec_data, found, options, out: Path, settings: Settings,
           progress: bool, finish, workers: int, finding: dict | None = None) -> dict[str, str]:
    """Submit one task per batch of cells, hand each result to ``finish`` as it lands, record the cells of
    a task whose retries are spent as failed (the others go on); Ctrl-C cancels what is outstanding.

    ``finding`` (face task -> person) are the photos still being analysed: a person's batches are submitted
    once their photos are done and fewer photos are outstanding than there are workers — Ray has no
    priorities, and a cell taken while photos still wait for a worker would leave the slow ones (profiles:
    ~2 s each on CPU) to the others, while waiting for every person's photos leaves a worker idle at the end."""
    remote = ray.remote(cells_task).options(**options)
    finding = dict(finding or {})
    left: dict[str, int] = {}
    for identity in finding.values():
        left[identity] = left.get(identity, 0) + 1
    waiting, pending = list(batches), {}
    failures: dict[str, str] = {}
    faces_bar = tqdm(total=len(finding), desc="faces in the selfies", disable=not progress or not finding,
                     unit="photo")
    bar = tqdm(total=sum(map(len, batches)), desc="cells", disable=not progress, unit="cell")

    def release() -> None:
        if len(finding) >= workers:
            return
        for cells in [b for b in waiting if not left.get(b[0].identity)]:
            waiting.remove(cells)
            refs = found[cells[0].identity]
            pending[remote.remote(spec_data, cells, str(out), settings, False, *refs)] = cells

    try:
        release()
        while pending or finding:
            done, _ = ray.wait([*pending, *finding], num_returns=1, fetch_local=False)
            if done[0] in finding:
                left[finding.pop(done[0])] -= 1
                faces_bar.update(1)
                if not finding:
                    faces_bar.close()  # its rate and time stop here, not when the cells end
            else:
                cells = pending.pop(done[0])
                try:
                    for cell, table, seconds in ray.get(done[0]):
                        finish(cell, table, seconds)
                except Exception as exc:  # retries exhausted: recorded, the others go on
                    failures.update({c.folder: f"{type(exc).__name__}: {str(exc)[:500]}" for c in cells})
                bar.update(len(cells))
            release()
    except KeyboardInterrupt:
        for ref in [*pending, *finding]:
            ray.cancel(ref, force=True)
        raise
    finally:
        faces_bar.close()
        bar.close()
    return failures


def run_ray(kind: StudyKind, cells: list[Cell], out: Path, settings: Settings, progress: bool,
            finish: Callable[[Cell, Any, float], None], address: str | None = None, max_retries: int = 2,
            num_cpus: int | None = None) -> dict[str, str]:
    """Run ``cells`` as Ray tasks; returns ``{cell folder: error}`` for cells that failed after retries."""
    ray = connect(address, num_cpus, imports=["workbench.studies.executors"])
    gpus = 0 if kind.family.tiny or settings.resolved_device() == "cpu" else 1
    options = dict(num_gpus=gpus, num_cpus=1, max_retries=max_retries, retry_exceptions=True)
    workers = int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1))
    spec_data = kind.spec.model_dump()
    # the faces in each person's photos first, a task per photo over every worker; each task of a person's
    # cells gets theirs and checks the set from them once per worker process
    people = by_identity(cells)
    find = ray.remote(faces_task).options(**options)
    found = {identity: [find.remote(spec_data, str(path)) for path in kind.face_photos(identity, theirs, out)]
             for identity, theirs in people.items()}
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(kind.shared_key(cell), []).append(cell)
    finding = {ref: identity for identity, refs in found.items() for ref in refs}
    if len(groups) >= workers and all(key is not None for key in groups):
        # enough groups to keep every worker busy: one task per shared likeness, which then loads once
        return _drain(ray, list(groups.values()), spec_data, found, options, out, settings, progress, finish,
                      workers, finding)
    # 1. every face, then the shared inputs (a likeness that several cells render from), one task each
    waiting = list(finding)
    with tqdm(total=len(waiting), desc="faces in the selfies", disable=not progress, unit="photo") as bar:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1, fetch_local=False)
            bar.update(len(done))
    shared = [ray.remote(shared_task).options(**options).remote(spec_data, key, people[key[0]], str(out), settings,
                                                                False, *found[key[0]])
              for key in kind.shared_keys(cells)]
    try:
        ray.get(shared)
    except Exception as exc:  # a shared input that cannot be built: every cell needing it fails
        return {cell.folder: f"shared input failed: {type(exc).__name__}: {exc}" for cell in cells}
    # 2. the cells, one task each
    return _drain(ray, [[cell] for cell in cells], spec_data, found, options, out, settings, progress, finish, workers)
