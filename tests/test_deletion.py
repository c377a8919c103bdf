"""Deletion that deletes: running jobs are stopped first and nothing of the person comes back; check reports,
study leftovers, the app's temporary copies go too; a moved workspace still cascades; raw selfie sets age out;
one unreadable manifest stops nothing. After each delete, the workspace (and the app's temporary folder) is
searched for the person's file names and pixels."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from workbench.images import list_images
from workbench.jobs import Jobs, scheduler
from workbench.retention import delete, sweep, wipe

PERSON = "lisa_debruine"


def _pixels(path) -> str | None:
    try:
        with Image.open(path) as image:
            return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()
    except Exception:  # noqa: BLE001 - not an image
        return None


def traces(folders, photos) -> list:
    """Files under ``folders`` with one of ``photos``' names, bytes or pixels."""
    names = {p.name for p in photos}
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    pixels = {_pixels(p) for p in photos}
    found = []
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if not path.is_file() or path.is_symlink():
                continue
            if (path.name in names or hashlib.sha256(path.read_bytes()).hexdigest() in digests
                    or (path.suffix.lower() in (".jpg", ".png") and _pixels(path) in pixels)):
                found.append(path)
    return found


@pytest.fixture
def workspace(settings, faces_dir, tmp_path):
    home = tmp_path / "home"
    person = home / "selfie-sets" / "lisa"
    shutil.copytree(faces_dir / PERSON, person)
    return replace(settings, home=home), person


def training_job(user, person, out, analyzer):
    """A long training of ``person`` into ``out`` as a job, returned once it is training (not still loading)."""
    from workbench.likeness import train_likeness

    jobs = Jobs(user.home)
    record = jobs.start("train", "Training 'lisa'", lambda context: {"likeness": str(train_likeness(
        person, out, settings=user, analyzer=analyzer, progress=False, steps=2000, checkpoint_every=1000,
        callback=context.step).path)}, writes=[out])
    deadline = time.monotonic() + 120
    while (jobs.get(record.id).progress.get("done") or 0) < 2:
        assert time.monotonic() < deadline and not jobs.get(record.id).finished, jobs.get(record.id)
        time.sleep(0.05)
    return jobs, record


def test_a_delete_stops_the_running_training_first_and_nothing_comes_back(workspace, analyzer, faces_dir):
    """A training job writing the likeness is cancelled and waited for; the folder is then removed and stays
    removed (the job once wrote its LoRA again a minute after "Delete my data")."""

    user, person = workspace
    photos = list_images(faces_dir / PERSON)  # the originals, outside the workspace: what to search for
    out = user.home / "likenesses" / "lisa"
    jobs, record = training_job(user, person, out, analyzer)
    receipt = delete(person, user.home, cascade=True)
    assert jobs.get(record.id).state == "cancelled"
    assert any(record.id in line for line in receipt.cancelled_jobs)
    assert not out.exists() and not person.exists()
    scheduler().idle()  # the worker is idle: nothing of the job is left to run
    assert not out.exists() and traces([user.home], photos) == []


def test_a_check_report_written_in_the_workspace_goes_with_the_set(workspace, faces_dir, cli):
    user, person = workspace
    report = user.home / "reports" / "lisa-check.html"
    code, _, err = cli(user.home, "check", person, "--html", report, "--json", user.home / "reports" / "lisa.json")
    assert code == 0, err
    assert report.is_file() and "base64" in report.read_text()  # the person's thumbnails are in it
    outside = user.home.parent / "mine.html"
    cli(user.home, "check", person, "--html", outside)
    assert not outside.with_name("mine.html.manifest.json").exists()  # outside the workspace: the user's own file
    receipt = delete(person, user.home, cascade=True)
    assert not report.exists() and not (user.home / "reports" / "lisa.json").exists()
    assert str(report) in receipt.removed_files
    assert list((user.home / "reports").iterdir()) == []  # the sidecars went too


def test_an_unreadable_manifest_is_reported_and_stops_nothing(workspace, analyzer):
    from workbench.likeness import train_likeness

    user, person = workspace
    likeness = train_likeness(person, user.home / "likenesses" / "lisa", settings=user, analyzer=analyzer,
                              progress=False, steps=1)
    broken = user.home / "runs" / "someone-elses"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{ half a manifest")
    receipt = delete(person, user.home, cascade=True)
    assert not person.exists() and not likeness.path.exists()
    assert broken.exists() and any("someone-elses" in p for p in receipt.problems)
    assert any(line.startswith("unreadable manifest") for line in receipt.lines())


def test_a_moved_workspace_still_cascades(workspace, analyzer, tmp_path):
    """Stages link to each other relative to themselves: a workspace moved (or restored from a backup
    elsewhere) keeps its lineage, and deleting the set takes the likeness and the run."""
    from workbench.generate import generate
    from workbench.likeness import train_likeness

    user, person = workspace
    likeness = train_likeness(person, user.home / "likenesses" / "lisa", settings=user, analyzer=analyzer,
                              progress=False, steps=1)
    generate(likeness, ["beach"], user.home / "runs" / "lisa-beach", steps=[2], seeds=[0], prompts_per_pack=1,
             settings=user, progress=False)
    moved = tmp_path / "elsewhere" / "home"
    moved.parent.mkdir()
    shutil.move(user.home, moved)
    receipt = delete(moved / "selfie-sets" / "lisa", moved, cascade=True)
    assert not (moved / "likenesses" / "lisa").exists() and not (moved / "runs" / "lisa-beach").exists()
    assert any("lisa-beach" in f for f in receipt.removed_folders)


def test_older_than_removes_raw_selfie_sets_by_their_own_age(workspace, tmp_path):
    user, person = workspace
    fresh = user.home / "selfie-sets" / "fresh"
    fresh.mkdir()
    shutil.copyfile(next(iter(list_images(person))), fresh / "01.jpg")
    old = time.time() - 40 * 86400
    for path in [person, *person.iterdir()]:
        os.utime(path, (old, old))
    receipt = sweep(user.home, "30d")
    assert not person.exists() and fresh.exists()
    assert any(str(person) in f for f in receipt.removed_files)


def test_delete_my_data_during_a_job_removes_everything_and_the_apps_copies(workspace, analyzer, faces_dir,
                                                                           tmp_path, monkeypatch):
    """The app's "Delete my data": the person's job stopped first, their whole workspace gone, and the copies
    made for them in Gradio's temporary folder (their pending upload, the copies Gradio made of the files the
    app showed them) removed; another person's upload of the very same photo stays."""
    from gradio.processing_utils import save_file_to_cache

    from workbench.app.common import gradio_copies
    from workbench.app.uploads import Ledger

    user, person = workspace
    photos = list_images(faces_dir / PERSON)
    temp = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(temp))
    ledger = Ledger()
    for who, folder in (("lisa", "a1"), ("someone", "b2")):  # the same photo, uploaded by two people
        (temp / folder).mkdir(parents=True)
        shutil.copyfile(photos[0], temp / folder / photos[0].name)
        ledger.record(who, [str(temp / folder / photos[0].name)])
    shown = Path(save_file_to_cache(next(iter(list_images(person))), str(temp)))  # a photo the app showed
    out = user.home / "likenesses" / "lisa"
    jobs, record = training_job(user, person, out, analyzer)
    receipt = wipe(user.home, copies_of=lambda files: [*ledger.of("lisa"), *gradio_copies(files)])
    assert receipt.cancelled_jobs and not user.home.exists()
    scheduler().idle()
    assert not user.home.exists()  # the cancelled job wrote nothing afterwards, not even its own record
    assert not shown.exists() and not (temp / "a1").exists()
    # of the person's photos, only someone else's upload of the same photo is left: it is theirs
    assert traces([user.home.parent], photos) == [temp / "b2" / photos[0].name]


@pytest.mark.slow
def test_a_killed_study_leaves_no_copy_of_the_person_after_a_delete(workspace, faces_dir, tmp_path):
    """An upload-quality cell copies the person's photos while it runs; killed there, the copies stay on disk
    until the cell is locked again, and a cascading delete of the set removes them with the study."""
    import subprocess
    import sys
    import textwrap

    import yaml

    user, person = workspace
    spec = tmp_path / "uq.yaml"
    spec.write_text(yaml.safe_dump({"name": "uq", "kind": "upload-quality", "family": "tiny-sd", "selfies": str(person),
                                    "train": {"steps": 1}, "packs": ["beach"], "prompts_per_pack": 1, "steps": [2],
                                    "seeds": [0], "recognizers": ["dlib"],
                                    "degradations": [{"kind": "blur", "strength": 3}]}))
    study = user.home / "reports" / "study-uq"
    killer = textwrap.dedent("""
        import os, signal, sys
        from workbench.config import Settings
        from workbench import chain
        from workbench.studies import run_study
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)  # inside the first cell, its copies on disk
        chain.run_chain = killed
        run_study(sys.argv[1], sys.argv[2], settings=Settings(home=sys.argv[3], device="cpu", offline=True),
                  progress=False)
    """)
    done = subprocess.run([sys.executable, "-c", killer, str(spec), str(study), str(user.home)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-2000:]
    photos = list_images(faces_dir / PERSON)
    assert traces([study], photos)  # the killed cell's copies are there
    delete(person, user.home, cascade=True)
    assert not study.exists() and traces([user.home], photos) == []
