"""Jobs: long work (train, generate, score, suite) with an id, a state, progress, a log and a result, kept
in the workspace (``<home>/jobs/<id>/job.json``) so a page reload or an app restart finds them again. One
runner per process (one GPU) serves every person fairly (``Scheduler``): people take turns, each has a
bounded queue, and a long job pauses for another person's turn and then goes on where it stopped.

States: queued -> running -> done | failed | cancelled; ``cancelling`` while a cancel is on its way; a
paused job is ``queued`` again. Cancel is cooperative and quick: the work calls the job's check between
training steps, images, denoising steps (interrupts.py) and scored images, which raises ``Cancelled`` (a
``KeyboardInterrupt``, so stages record ``cancelled`` and keep a resumable checkpoint, exactly as Ctrl-C
does). A job still ``running`` in a process that is gone reads as ``interrupted``: its artifact resumes
when the same job is started again.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .interrupts import stop_check
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
    note: str = ""  # what the person should know beside the state (a pause, what a cancelled job kept)

    @property
    def finished(self) -> bool:
        return self.state in FINAL


class JobContext:
    """What a job's work sees: report progress, log a line, and learn about a cancel."""

    def __init__(self, jobs: Jobs, record: JobRecord, runner: Scheduler | None = None):
        self.jobs, self.record, self.runner = jobs, record, runner
        self._started = time.perf_counter()

    def cancelled(self) -> bool:
        """Asked to stop, or the job's folder was deleted under it (a person's data deleted)."""
        folder = self.jobs.folder(self.record.id)
        return not folder.is_dir() or (folder / "cancel").exists()

    def check(self) -> None:
        """Raise ``Cancelled`` when asked to stop, ``Paused`` when another person's turn has come."""
        if self.cancelled():
            progress = self.record.progress
            where = f" at {progress['unit']} {progress['done']} of {progress['total']}" if progress.get("total") else ""
            raise Cancelled(f"cancelled{where}")
        if self.runner is not None and self.runner.should_pause(self.record):
            raise Paused("another person's turn")

    def step(self, done: int, total: int, unit: str = "step", **info: Any) -> None:
        """Progress (with an ETA from the pace so far); raises when asked to stop (``check``)."""
        elapsed = time.perf_counter() - self._started
        eta = elapsed / done * (total - done) if done else None
        self.record.progress = {"done": done, "total": total, "unit": unit, "eta_seconds": eta, **info}
        self.jobs.save(self.record)
        self.check()

    def log(self, line: str) -> None:
        self.record.log = [*self.record.log, line][-200:]
        self.jobs.save(self.record)


class Jobs:
    """The jobs of one workspace (a user's home in the app)."""

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
              params: dict[str, Any] | None = None, writes: list[str | os.PathLike] = (),
              pausable: bool = False) -> JobRecord:
        """Queue ``work(context) -> result`` and return its record at once. ``writes``: the folders the
        work writes (a delete of one of them stops the job first). ``pausable``: the work resumes where it
        stopped when run again (training, generation), so it may pause for another person's turn. Refused
        (``ConfigError``) when this person already has the most jobs a person may have waiting."""
        from .lineage import link

        record = JobRecord(id=f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}", kind=kind, title=title,
                           params=params or {}, writes=[link(w, self.root.parent) for w in writes])
        entry = _Entry(self, record, work, pausable)
        self.save(record, create=True)
        try:
            scheduler().submit(entry)
        except Exception:
            import shutil

            shutil.rmtree(self.folder(record.id), ignore_errors=True)  # refused: no record of a job that never was
            raise
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


class Paused(Cancelled):
    """Raised inside a job's work when its turn is over and another person's job waits: it stops as a
    cancel does (a checkpoint, the images written) and queues again; its rerun resumes where it stopped."""


@dataclass
class _Entry:
    jobs: Jobs
    record: JobRecord
    work: Callable[[JobContext], dict[str, Any]]
    pausable: bool

    @property
    def person(self) -> str:
        return str(self.jobs.root.parent)


class Scheduler:
    """The process's one runner of jobs (one GPU), shared fairly between people (workspaces). Each person's
    jobs wait in their own queue, at most ``per_person`` unfinished; people take turns; a pausable job that
    has run ``turn_seconds`` while another person's job waits stops at its next step (``Paused``) and
    queues again at the head of its person's queue. So another person's job waits at most one turn per
    person ahead of it, plus the step in progress and a model load."""

    def __init__(self, turn_seconds: float = 120.0, per_person: int = 3):
        self.turn_seconds, self.per_person = float(turn_seconds), int(per_person)
        self._cond = threading.Condition()
        self._waiting: dict[str, list[_Entry]] = {}  # person -> their jobs, oldest first
        self._turns: list[str] = []  # people in the order their turns come
        self._running: _Entry | None = None
        self._turn_started = 0.0
        self._thread: threading.Thread | None = None

    def submit(self, entry: _Entry) -> None:
        from .errors import ConfigError

        with self._cond:
            mine = self._waiting.setdefault(entry.person, [])
            running = self._running is not None and self._running.person == entry.person
            if len(mine) + running >= self.per_person:
                raise ConfigError(f"you already have {len(mine) + running} jobs waiting or running (at most "
                                  f"{self.per_person} at a time, so everyone gets a turn): wait for one to finish, "
                                  "or cancel one in the Jobs tab.")
            mine.append(entry)
            if entry.person not in self._turns:
                self._turns.append(entry.person)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run_forever, daemon=True, name="workbench-jobs")
                self._thread.start()
            self._cond.notify_all()

    def _next(self) -> _Entry:
        with self._cond:
            while not any(self._waiting.values()):
                self._cond.wait()
            person = next(p for p in self._turns if self._waiting.get(p))
            self._turns.remove(person)
            self._turns.append(person)  # served: to the back of the line
            entry = self._waiting[person].pop(0)
            self._running, self._turn_started = entry, time.monotonic()
            return entry

    def _run_forever(self) -> None:
        while True:
            entry = self._next()
            try:
                record = run_job(entry.jobs, entry.record, entry.work, self)
            except BaseException:  # noqa: BLE001 - the runner outlives any job
                record = entry.record
            with self._cond:
                self._running = None
                if record.state == "queued":  # paused for another person's turn: first in its own queue
                    self._waiting.setdefault(entry.person, []).insert(0, entry)
                self._cond.notify_all()

    def should_pause(self, record: JobRecord) -> bool:
        """Whether the running job's turn is over: it ran ``turn_seconds`` and another person waits."""
        with self._cond:
            entry = self._running
            if entry is None or entry.record is not record or not entry.pausable:
                return False
            if time.monotonic() - self._turn_started < self.turn_seconds:
                return False
            return any(jobs for person, jobs in self._waiting.items() if jobs and person != entry.person)

    def wait_for(self, job_id: str) -> tuple[int, float] | None:
        """For a job waiting here: how many other people's turns come before it, and the longest those take
        (None for a job behind its own person's earlier jobs, or not waiting here)."""
        with self._cond:
            for person, entries in self._waiting.items():
                ids = [e.record.id for e in entries]
                if job_id not in ids:
                    continue
                if ids.index(job_id) > 0:
                    return None
                ahead = {p for p in self._turns[: self._turns.index(person)] if self._waiting.get(p)}
                running = self._running
                if running is not None and running.person != person:
                    ahead.add(running.person)
                return len(ahead), len(ahead) * self.turn_seconds
            return None

    def idle(self, timeout: float = 60.0) -> bool:
        """Wait until nothing runs or waits (tests, shutdown); False when still busy after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running is not None or any(self._waiting.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


_scheduler: Scheduler | None = None
_scheduler_lock = threading.Lock()


def scheduler() -> Scheduler:
    """This process's runner (one per process: one GPU)."""
    global _scheduler
    with _scheduler_lock:
        if _scheduler is None:
            _scheduler = Scheduler()
        return _scheduler


def configure(turn_seconds: float | None = None, per_person: int | None = None) -> Scheduler:
    """Set the turn length and the per-person bound (``workbench app --turn-seconds``)."""
    runner = scheduler()
    with runner._cond:
        if turn_seconds is not None:
            runner.turn_seconds = float(turn_seconds)
        if per_person is not None:
            runner.per_person = int(per_person)
    return runner


def run_job(jobs: Jobs, record: JobRecord, work: Callable[[JobContext], dict[str, Any]],
            runner: Scheduler | None = None) -> JobRecord:
    """Run one job in this thread, recording every state change. A pause leaves it ``queued``."""
    folder = jobs.folder(record.id)
    if not folder.is_dir() or (folder / "cancel").exists():  # cancelled (or deleted) while queued: never started
        record.state, record.error = "cancelled", "cancelled before it started"
        jobs.save(record)
        return record
    record.state, record.note = "running", ""
    jobs.save(record)
    context = JobContext(jobs, record, runner)
    try:
        with stop_check(context.check):
            record.result = work(context) or {}
        record.state = "done"
        if record.progress.get("total"):  # the work's last report may come before its last step
            record.progress = {**record.progress, "done": record.progress["total"], "eta_seconds": 0}
    except Paused:
        record.state = "queued"
        record.note = "paused so another person's job gets its turn; it goes on from where it stopped"
    except Cancelled as stop:
        record.state, record.error = "cancelled", str(stop)
    except Exception as exc:  # the job's error is its result; the runner keeps serving
        record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
        record.log = [*record.log, traceback.format_exc(limit=3)][-200:]
    jobs.save(record)
    return record


def waiting_words(record: JobRecord) -> str | None:
    """For a queued job: when its turn comes, in words."""
    if record.state != "queued":
        return None
    runner = scheduler()
    found = runner.wait_for(record.id)
    if found is None:
        return "after your earlier jobs" if runner._running is not None else None
    people, seconds = found
    if not people:
        return "starts next"
    whose = "another person's job" if people == 1 else f"{people} other people's jobs"
    return f"starts within about {_duration(seconds)} ({whose} first, each at most {_duration(runner.turn_seconds)})"


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds))} s" if seconds < 120 else f"{round(seconds / 60)} min"


def describe(record: JobRecord) -> str:
    """One readable line: what, state, how far, loss, time left, when a waiting job starts."""
    progress = record.progress
    parts = [record.title, record.state]
    if (when := waiting_words(record)) is not None:
        parts.append(when)
    if progress.get("total"):
        parts.append(f"{progress.get('done', 0)}/{progress['total']} {progress.get('unit', '')}s".strip())
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress.get("eta_seconds") is not None and record.state == "running":
        parts.append(f"about {max(1, round(progress['eta_seconds']))} s left")
    if record.error and record.state == "failed":
        parts.append(record.error)
    if record.note:
        parts.append(record.note)
    return " · ".join(parts)
