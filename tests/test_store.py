from __future__ import annotations

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


def test_one_writer_per_folder_and_stale_locks_are_taken_over(tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    import pytest

    from workbench.errors import ConfigError
    from workbench.store import folder_lock

    folder = tmp_path / "run"
    folder.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / ".lock").write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "since": "t0"}))
        with pytest.raises(ConfigError, match=f"being written by pid {other.pid}"), folder_lock(folder):
            pass
        assert (folder / ".lock").is_file()  # the holder's lock is untouched
    finally:
        other.kill()
        other.wait()
    (folder / ".image.png.x1.tmp").write_bytes(b"partial")  # what a killed atomic write leaves
    (folder / "checkpoints" / ".step-000004.tmp").mkdir(parents=True)
    with folder_lock(folder):  # the holder is dead now: taken over, and its leftovers cleaned
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
        assert not (folder / ".image.png.x1.tmp").exists()
        assert not (folder / "checkpoints" / ".step-000004.tmp").exists()
    assert not (folder / ".lock").exists()


def test_two_trainings_into_one_folder_are_refused(settings, analyzer, faces_dir, tmp_path):
    import json
    import socket
    import subprocess
    import sys

    import pytest

    from workbench.errors import ConfigError
    from workbench.likeness import train_likeness

    out = tmp_path / "lk"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "t0"}))
        with pytest.raises(ConfigError, match="being written by pid"):
            train_likeness(faces_dir / "aws_rek_subject1", out, family="tiny-sd", settings=settings, analyzer=analyzer,
                           progress=False, steps=1)
        assert not (out / "checkpoints").exists()  # refused before any work
    finally:
        holder.kill()
        holder.wait()
