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


@pytest.fixture
def short_turns():
    from workbench.jobs import configure, scheduler

    runner = scheduler()
    assert runner.idle(60), "a job of an earlier test is still running"
    before = (runner.turn_seconds, runner.per_person)
    yield configure(turn_seconds=0.5, per_person=3)
    runner.idle(60)
    configure(*before)


def test_two_people_take_turns_and_a_long_job_pauses_then_goes_on(tmp_path, short_turns):
    """Bea's job waits at most one turn behind Ana's long one; Ana's then goes on from where it paused."""
    ana, bea = Jobs(tmp_path / "ana"), Jobs(tmp_path / "bea")
    done_steps: list[int] = []

    def long_work(context):  # resumable: it carries on from the steps already done, as training does
        for step in range(len(done_steps) + 1, 401):
            time.sleep(0.01)
            done_steps.append(step)
            context.step(step, 400)
        return {"steps": len(done_steps)}

    long = ana.start("train", "Training 'ana'", long_work, pausable=True)
    _wait(ana, long.id, {"running"})
    asked = time.monotonic()
    short = bea.start("generate", "Generating for bea", lambda context: {"started": time.monotonic()})
    assert "starts within about 1 s (another person's job first" in describe(bea.get(short.id))
    started = _wait(bea, short.id, {"done"}).result["started"]
    assert started - asked < 0.5 + 2.0  # one turn, plus the step in progress and bookkeeping
    paused = ana.get(long.id)
    assert paused.state in {"queued", "running"}
    finished = _wait(ana, long.id, {"done"}, timeout=60)
    assert finished.result == {"steps": 400} and done_steps == list(range(1, 401))  # no step lost or repeated


def test_a_job_that_cannot_resume_is_never_paused(tmp_path, short_turns):
    ana, bea = Jobs(tmp_path / "ana"), Jobs(tmp_path / "bea")
    scoring = ana.start("score", "Scoring", lambda c: [c.step(i, 150) or time.sleep(0.01) for i in range(1, 150)]
                        and {"scored": True})
    _wait(ana, scoring.id, {"running"})
    bea.start("generate", "Generating", lambda context: {})
    assert _wait(ana, scoring.id, {"done"}).result == {"scored": True}


def test_each_person_may_queue_a_few_jobs_and_no_more(tmp_path, short_turns):
    ana, bea = Jobs(tmp_path / "ana"), Jobs(tmp_path / "bea")
    gate = __import__("threading").Event()
    first = ana.start("train", "one", lambda context: gate.wait(30) and {})
    ana.start("train", "two", lambda context: {})
    ana.start("train", "three", lambda context: {})
    with pytest.raises(ConfigError, match="already have 3 jobs waiting or running"):
        ana.start("train", "four", lambda context: {})
    assert [r.title for r in ana.list()] == ["three", "two", "one"]  # the refused job left no record
    assert "after your earlier jobs" in describe(ana.list()[0])
    bea.start("train", "bea's", lambda context: {})  # another person is not held by ana's queue
    gate.set()
    _wait(ana, first.id, {"done"})


def test_cancel_stops_a_1000_step_image_within_seconds(tmp_path):
    """A cancel lands between denoising steps, not only between images."""
    from workbench import Settings, generate, train_likeness
    from workbench.resources import samples

    settings = Settings(home=tmp_path, device="cpu", offline=True)
    likeness = train_likeness(samples() / "aws_rek_subject1", tmp_path / "likenesses" / "me", family="tiny-sd",
                              settings=settings, progress=False, steps=2, checkpoint_every=2)
    jobs = Jobs(tmp_path)
    out = tmp_path / "runs" / "long"
    record = jobs.start("generate", "Generating", lambda context: {"run": str(generate(
        likeness.path, ["corporate-headshot"], out, steps=[1000], seeds=[0], prompts_per_pack=1, settings=settings,
        progress=False, callback=context.step).path)}, writes=[out])
    _wait(jobs, record.id, {"running"})
    time.sleep(3)  # well inside the image: 1000 steps take far longer than this on any machine
    asked = time.monotonic()
    jobs.cancel(record.id)
    cancelled = _wait(jobs, record.id, {"cancelled"}, timeout=30)
    assert time.monotonic() - asked < 5, cancelled
    assert not list(out.glob("images/*.png"))
