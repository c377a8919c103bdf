"""Jobs: states, progress, cancel within seconds, failures recorded, a dead process reads as interrupted."""

from __future__ import annotations

import json
import time

import pytest

from workbench.errors import ConfigError
from workbench.jobs import Jobs, describe


def _wait(jobs, job_id, states, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        record = jobs.get(job_id)
        if record.state in states:
            return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {jobs.get(job_id).state}")


def test_cancel_stops_a_job_between_steps(tmp_path):
    jobs = Jobs(tmp_path)

    def work(context):
        for step in range(1, 10_000):
            time.sleep(0.01)
            context.step(step, 10_000, loss=1.0 / step)
        return {"never": True}

    record = jobs.start("train", "Training 'x'", work)
    running = _wait(jobs, record.id, {"running"})
    time.sleep(0.3)
    assert "running" in describe(jobs.get(record.id)) and jobs.get(record.id).progress["done"] > 0
    started = time.time()
    jobs.cancel(running.id)
    done = _wait(jobs, record.id, {"cancelled"})
    assert time.time() - started < 5 and done.result == {} and "cancelled at step" in done.error
    assert done.progress["done"] < 10_000


def test_failures_are_recorded_and_later_jobs_still_run(tmp_path):
    jobs = Jobs(tmp_path)
    broken = jobs.start("generate", "Generating", lambda context: 1 / 0)
    fine = jobs.start("generate", "Generating again", lambda context: {"images": 3})
    assert _wait(jobs, broken.id, {"failed"}).error.startswith("ZeroDivisionError")
    assert _wait(jobs, fine.id, {"done"}).result == {"images": 3}
    assert [r.id for r in jobs.list("generate")][:2] == [fine.id, broken.id]


def test_a_job_whose_process_died_reads_as_interrupted(tmp_path):
    import subprocess
    import sys

    jobs = Jobs(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = "20261126-101500-abc123"
    folder = tmp_path / "jobs" / old
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"id": old, "kind": "train", "title": "Training", "state": "running",
                                                 "pid": int(dead.stdout)}))
    assert jobs.get(old).state == "interrupted" and jobs.latest_active("train") is None


@pytest.mark.parametrize("crafted", ["../../etc", "..", "x/../../y", "20261126-101500-abc123/../../z", ""])
def test_a_job_id_from_the_browser_cannot_name_another_folder(tmp_path, crafted):
    with pytest.raises(ConfigError, match="not a job id"):
        Jobs(tmp_path).get(crafted)
    with pytest.raises(ConfigError, match="not a job id"):
        Jobs(tmp_path).cancel(crafted)


@pytest.mark.parametrize("state", ["queued"])
def test_cancelling_a_queued_job_means_it_never_starts(tmp_path, state):
    jobs = Jobs(tmp_path)
    blocker = jobs.start("train", "long", lambda c: [c.step(i, 200) or time.sleep(0.01) for i in range(1, 200)])
    queued = jobs.start("train", "next", lambda c: {"ran": True})
    assert jobs.get(queued.id).state == state
    assert jobs.cancel(queued.id).state == "cancelling"
    jobs.cancel(blocker.id)
    _wait(jobs, blocker.id, {"cancelled"})
    cancelled = _wait(jobs, queued.id, {"cancelled"})
    assert cancelled.result == {} and "before it started" in cancelled.error
