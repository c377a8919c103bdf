"""Jobs: long work (train, generate, score, study, suite) with an id, a state, progress, a log and a
result, kept in the workspace (``<home>/jobs/<id>/job.json``) so a page reload or an app restart finds
them again. One worker per process runs them one after another (one GPU).

States: queued -> running -> done | failed | cancelled; ``cancelling`` while a cancel is on its way.
Cancel is cooperative and quick: the trainer and the runner call ``JobContext.step`` between steps and
images, which raises ``Cancelled`` (a ``KeyboardInterrupt``, so stages record ``cancelled`` and keep a
resumable checkpoint, exactly as Ctrl-C does). A job still ``running`` in a process that is gone reads
as ``interrupted``: its artifact resumes when the same job is started again.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .store import atomic_write_json, now, process_alive

FINAL = {"done", "failed", "cancelled", "interrupted"}
JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # what Jobs.start makes: time and 6 random hex digits


class Cancelled(KeyboardInterrupt):
    """Raised inside a job's work when its cancel was asked for."""


@dataclass
class JobRecord:
    id: str
    kind: str
    title: str
    state: str = "queued"
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    order: int = field(default_factory=time.time_ns)  # newest-first ordering within one second
    pid: int = field(default_factory=os.getpid)
    params: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)  # done, total, unit, loss, eta_seconds
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # The folders the job writes, relative to the jobs' home: a delete of any of them cancels the job and
    # waits for it to stop before it removes anything (retention.py).
    writes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in FINAL


class JobContext:
    """What a job's work sees: report progress, log a line, and learn about a cancel."""

    def __init__(self, jobs: Jobs, record: JobRecord):
        self.jobs, self.record = jobs, record
        self._started = time.perf_counter()

    def cancelled(self) -> bool:
        """Asked to stop, or the job's folder was deleted under it (a person's data deleted)."""
        folder = self.jobs.folder(self.record.id)
        return not folder.is_dir() or (folder / "cancel").exists()

    def step(self, done: int, total: int, unit: str = "step", **info: Any) -> None:
        """Progress (with an ETA from the pace so far); raises ``Cancelled`` when asked to stop."""
        elapsed = time.perf_counter() - self._started
        eta = elapsed / done * (total - done) if done else None
        self.record.progress = {"done": done, "total": total, "unit": unit, "eta_seconds": eta, **info}
        self.jobs.save(self.record)
        if self.cancelled():
            raise Cancelled(f"cancelled at {unit} {done} of {total}")

    def log(self, line: str) -> None:
        self.record.log = [*self.record.log, line][-200:]
        self.jobs.save(self.record)


class Jobs:
    """The jobs of one workspace (a user's home in the app)."""

    _queues: dict[str, queue.Queue] = {}
    _lock = threading.Lock()

    def __init__(self, home: str | os.PathLike):
        self.root = Path(home) / "jobs"

    def folder(self, job_id: str) -> Path:
        """A job's folder; an id is only ever one this module made (a browser sends ids back)."""
        if not JOB_ID.fullmatch(str(job_id)):
            from .errors import ConfigError

            raise ConfigError(f"{str(job_id)[:40]!r} is not a job id.")
        return self.root / job_id

    def save(self, record: JobRecord, create: bool = False) -> None:
        """Write the record. Only ``start`` creates a job's folder: once a delete removed it, the job's
        later updates (its cancel, its end) write nothing, so no trace of a deleted person comes back."""
        record.updated = now()
        folder = self.folder(record.id)
        if not create and not folder.is_dir():
            return
        atomic_write_json(folder / "job.json", asdict(record))

    def get(self, job_id: str) -> JobRecord | None:
        path = self.folder(job_id) / "job.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = JobRecord(**{k: v for k, v in data.items() if k in JobRecord.__dataclass_fields__})
        except (ValueError, TypeError):  # a damaged record: shown as failed, never a traceback in the app
            return JobRecord(id=job_id, kind="unknown", title=f"job {job_id}", state="failed", pid=0,
                             error=f"{path}: the job's record cannot be read.")
        if not record.finished and not process_alive(record.pid):
            record.state = "interrupted"  # its process is gone: the artifact resumes when run again
        elif not record.finished and (self.folder(job_id) / "cancel").exists():
            record.state = "cancelling"  # asked; the worker stops it between steps
        return record

    def list(self, kind: str | None = None) -> list[JobRecord]:
        if not self.root.is_dir():
            return []
        records = [r for p in self.root.iterdir() if JOB_ID.fullmatch(p.name) and (r := self.get(p.name)) is not None]
        return sorted((r for r in records if kind is None or r.kind == kind), key=lambda r: r.order, reverse=True)

    def latest_active(self, kind: str) -> JobRecord | None:
        return next((r for r in self.list(kind) if not r.finished), None)

    def start(self, kind: str, title: str, work: Callable[[JobContext], dict[str, Any]],
              params: dict[str, Any] | None = None, writes: list[str | os.PathLike] = ()) -> JobRecord:
        """Queue ``work(context) -> result`` and return its record at once. ``writes``: the folders the
        work writes (a delete of one of them stops the job first)."""
        from .lineage import link

        record = JobRecord(id=f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}", kind=kind, title=title,
                           params=params or {}, writes=[link(w, self.root.parent) for w in writes])
        self.save(record, create=True)
        self._worker().put((self, record, work))
        return record

    def cancel(self, job_id: str) -> JobRecord | None:
        """Ask a job to stop. Only the worker writes a started job's record (no lost updates): this
        leaves a ``cancel`` file, which a queued job sees before it starts and a running one between steps."""
        record = self.get(job_id)
        if record is None or record.finished:
            return record
        (self.folder(job_id) / "cancel").write_text(now())
        return self.get(job_id)

    def writing(self, paths: list[Path]) -> list[JobRecord]:
        """The unfinished jobs that write inside any of ``paths`` or into a folder holding one."""
        from .lineage import resolve_link

        def overlaps(written: Path) -> bool:
            return any(p == written or p in written.parents or written in p.parents for p in paths)

        home = self.root.parent
        return [r for r in self.list() if not r.finished and any(overlaps(resolve_link(w, home)) for w in r.writes)]

    def wait(self, job_id: str, timeout: float) -> JobRecord | None:
        """The record once the job is finished (or gone), or as it is after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record is None or record.finished or time.monotonic() >= deadline:
                return record
            time.sleep(0.1)  # another process's job: its record on disk is the only signal

    def _worker(self) -> queue.Queue:
        """One worker thread per process: jobs of every user run one after another (one GPU)."""
        with Jobs._lock:
            if "worker" not in Jobs._queues:
                Jobs._queues["worker"] = queue.Queue()
                threading.Thread(target=_run_forever, args=(Jobs._queues["worker"],), daemon=True,
                                 name="workbench-jobs").start()
            return Jobs._queues["worker"]


def _run_forever(tasks: queue.Queue) -> None:
    while True:
        jobs, record, work = tasks.get()
        try:
            run_job(jobs, record, work)
        finally:
            tasks.task_done()


def run_job(jobs: Jobs, record: JobRecord, work: Callable[[JobContext], dict[str, Any]]) -> JobRecord:
    """Run one job in this thread, recording every state change."""
    folder = jobs.folder(record.id)
    if not folder.is_dir() or (folder / "cancel").exists():  # cancelled (or deleted) while queued: never started
        record.state, record.error = "cancelled", "cancelled before it started"
        jobs.save(record)
        return record
    record.state = "running"
    jobs.save(record)
    context = JobContext(jobs, record)
    try:
        record.result = work(context) or {}
        record.state = "done"
        if record.progress.get("total"):  # the work's last report may come before its last step
            record.progress = {**record.progress, "done": record.progress["total"], "eta_seconds": 0}
    except Cancelled as stop:
        record.state, record.error = "cancelled", str(stop)
    except Exception as exc:  # the job's error is its result; the worker keeps serving
        record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
        record.log = [*record.log, traceback.format_exc(limit=3)][-200:]
    jobs.save(record)
    return record


def describe(record: JobRecord) -> str:
    """One readable line: what, state, how far, loss, time left."""
    progress = record.progress
    parts = [record.title, record.state]
    if progress.get("total"):
        parts.append(f"{progress.get('done', 0)}/{progress['total']} {progress.get('unit', '')}s".strip())
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress.get("eta_seconds") is not None and record.state == "running":
        parts.append(f"about {max(1, round(progress['eta_seconds']))} s left")
    if record.error and record.state == "failed":
        parts.append(record.error)
    return " · ".join(parts)
