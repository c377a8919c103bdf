from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from workbench.store import (
    Manifest,
    Workspace,
    atomic_write_text,
    is_done,
    read_manifest,
    read_table,
    write_manifest,
    write_table,
)


def test_manifest_round_trip_records_versions(tmp_path):
    write_manifest(tmp_path, Manifest(kind="check", config={"a": 1}, seeds=[3]))
    manifest = read_manifest(tmp_path)
    assert manifest.kind == "check" and manifest.seeds == [3] and manifest.status == "running"
    assert "torch" in manifest.versions and "diffusers" in manifest.versions
    assert not is_done(tmp_path)
    manifest.status = "done"
    write_manifest(tmp_path, manifest)
    assert is_done(tmp_path)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    atomic_write_text(target, "old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_killed_write_leaves_old_manifest_intact(tmp_path):
    """A process killed mid-write (after the data, before the rename) must not corrupt the manifest."""
    write_manifest(tmp_path, Manifest(kind="likeness", status="done", config={"steps": 40}))
    child = textwrap.dedent(f"""
        import os
        from workbench.store import Manifest, write_manifest
        os.fsync = lambda fd: os._exit(9)  # die at the worst moment: temp written, not yet renamed
        write_manifest({str(tmp_path)!r}, Manifest(kind="likeness", status="running", config={{"x": "y" * 100000}}))
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True)
    assert result.returncode == 9
    manifest = read_manifest(tmp_path)
    assert manifest.status == "done" and manifest.config == {"steps": 40}


def test_tables_are_parquet_pandas_reads(tmp_path):
    frame = pd.DataFrame({"image_id": ["a", "b"], "value": [0.5, None]})
    path = write_table(frame, tmp_path / "scores.parquet")
    assert pd.read_parquet(path).equals(read_table(path))


def test_workspace_areas(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert ws.area("runs").is_dir() and ws.new_dir("likenesses", "me").is_dir()
    with pytest.raises(ValueError):
        ws.area("elsewhere")


def test_a_stage_that_fails_or_is_cancelled_says_so(tmp_path):
    import pytest

    from workbench.store import Manifest, read_manifest, stage, write_manifest

    for error, status in ((ValueError("broken photo"), "failed"), (KeyboardInterrupt(), "cancelled")):
        folder = tmp_path / status
        folder.mkdir()
        manifest = Manifest(kind="likeness")
        write_manifest(folder, manifest)
        with pytest.raises(type(error)), stage(folder, manifest):
            raise error
        saved = read_manifest(folder)
        assert saved.status == status and type(error).__name__ in saved.error


HOLD = textwrap.dedent("""
    import sys, time
    from workbench.locks import folder_lock
    with folder_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
""")


@contextlib.contextmanager
def held_by_another_process(folder):
    """A real writer in another process holding ``folder``'s lock."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_one_writer_per_folder_and_a_dead_writers_lock_is_free(tmp_path):
    import json
    import os

    from workbench.errors import ConfigError
    from workbench.locks import folder_lock

    folder = tmp_path / "run"
    folder.mkdir()
    with held_by_another_process(folder) as holder:
        with pytest.raises(ConfigError, match=f"being written by pid {holder.pid}"), folder_lock(folder):
            pass
        assert (folder / ".lock").is_file()  # the holder's lock is untouched
    # the holder was killed (SIGKILL): the kernel released its lock; its leftovers are cleaned by the next writer
    (folder / ".image.png.x1.tmp").write_bytes(b"partial")  # what a killed atomic write leaves
    (folder / "checkpoints" / ".step-000004.tmp").mkdir(parents=True)
    with folder_lock(folder):
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
        assert not (folder / ".image.png.x1.tmp").exists()
        assert not (folder / "checkpoints" / ".step-000004.tmp").exists()
        with folder_lock(folder):  # the same thread may enter again (a stage inside a stage)
            pass
        assert (folder / ".lock").is_file()
    assert not (folder / ".lock").exists()


def test_another_thread_of_the_same_process_is_refused(tmp_path):
    import threading

    from workbench.locks import FolderBusy, folder_lock

    refused = []

    def other():
        try:
            with folder_lock(tmp_path):
                pass
        except FolderBusy as busy:
            refused.append(str(busy))

    with folder_lock(tmp_path):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert refused and "being written by pid" in refused[0]


RACE = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from workbench.locks import FolderBusy, folder_lock
    root, trials, start = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    while time.time() < start:  # every process starts the first trial at the same instant
        pass
    held = []
    for trial in range(trials):
        folder = root / f"t{trial}"
        try:
            with folder_lock(folder):
                entered = time.monotonic_ns()
                time.sleep(0.005)
                held.append((trial, entered, time.monotonic_ns()))
        except FolderBusy:
            pass
    print(json.dumps(held))
""")


def test_three_processes_racing_for_dead_writers_locks_never_hold_one_together(tmp_path):
    """Each trial folder has a lock file left by a dead writer; three processes go for all of them at once.
    A pid-file lock let two in together in 12 of 40 trials; the kernel's lock lets in one at a time."""
    import json
    import time

    trials = 40
    for trial in range(trials):
        (tmp_path / f"t{trial}").mkdir()
        (tmp_path / f"t{trial}" / ".lock").write_text(json.dumps({"pid": 999_999_999, "host": "x", "since": "t0"}))
    start = time.time() + 3
    racers = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path), str(trials), str(start)],
                               stdout=subprocess.PIPE, text=True) for _ in range(3)]
    intervals = [json.loads(p.communicate(timeout=120)[0]) for p in racers]
    per_trial: dict[int, list] = {}
    for process, held in enumerate(intervals):
        for trial, entered, left in held:
            per_trial.setdefault(trial, []).append((entered, left, process))
    assert len(per_trial) == trials  # every trial was won by someone
    overlaps = [trial for trial, spans in per_trial.items()
                if any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])]
    assert overlaps == []
def test_two_trainings_into_one_folder_are_refused(settings, analyzer, faces_dir, tmp_path):
    from workbench.errors import ConfigError
    from workbench.likeness import train_likeness

    out = tmp_path / "lk"
    out.mkdir()
    with held_by_another_process(out) as holder:
        with pytest.raises(ConfigError, match=f"being written by pid {holder.pid}"):
            train_likeness(faces_dir / "aws_rek_subject1", out, family="tiny-sd", settings=settings, analyzer=analyzer,
                           progress=False, steps=1)
        assert not (out / "checkpoints").exists()  # refused before any work
