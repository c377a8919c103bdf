"""A kill at any stage boundary of a training, the final export included, leaves a folder that the next run
finishes: to the same bytes as an uninterrupted run, with a card that ``likeness show`` reads. The kill is
real (SIGKILL in a child process, no handler runs), so nothing but the files on disk is left."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SET = "aws_rek_subject1"
OPTIONS = dict(family="tiny-sd", steps=2, checkpoint_every=1, learning_rate=1e-3)

# Each point: the function of likeness/train.py to wrap, and which of its calls ends in the kill (``after``:
# once the call returned; ``inside``: half-way through the copy of the chosen LoRA, before its rename).
KILL_POINTS = {
    "after-first-checkpoint": ("save_checkpoint", "after", 1),
    "after-the-loop's-manifest": ("write_manifest", "after", 2),
    "inside-the-lora-copy": ("shutil.copyfile", "inside", 1),
    "after-the-lora": ("atomic_write", "after", 1),
    "after-the-kohya-export": ("export_kohya", "after", 1),
    "after-the-curve": ("write_table", "after", 1),
    "after-the-card": ("atomic_write_json", "after", 1),
}

KILLER = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from workbench.config import Settings
    from workbench.likeness import train as train_module

    selfies, out, home, name, where, nth, options = sys.argv[1:8]
    calls = {"n": 0}
    owner = train_module.shutil if name == "shutil.copyfile" else train_module
    attribute = name.split(".")[-1]
    original = getattr(owner, attribute)

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(nth) and where == "inside":
            Path(args[1]).write_bytes(Path(args[0]).read_bytes()[:1000])  # half a file, then the kill
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls["n"] == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, attribute, wrapped)
    settings = Settings(home=home, device="cpu", offline=True)
    train_module.train_likeness(selfies, out, settings=settings, progress=False, **json.loads(options))
""")


@pytest.fixture(scope="module")
def uninterrupted(settings, analyzer, faces_dir, tmp_path_factory):
    from workbench.likeness import train_likeness

    return train_likeness(faces_dir / SET, tmp_path_factory.mktemp("straight") / "lk", settings=settings,
                          analyzer=analyzer, progress=False, **OPTIONS)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_training_killed_at_any_boundary_finishes_on_the_next_run(point, uninterrupted, settings, analyzer,
                                                                    faces_dir, tmp_path, cli):
    import json

    from workbench.likeness import train_likeness
    from workbench.store import read_manifest

    out = tmp_path / "lk"
    name, where, nth = KILL_POINTS[point]
    killed = subprocess.run([sys.executable, "-c", KILLER, str(faces_dir / SET), str(out), str(tmp_path / "home"),
                             name, where, str(nth), json.dumps(OPTIONS)], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]  # it died at the point, not before or after
    assert read_manifest(out).status == "running"  # nothing recorded the kill: only the files tell
    again = train_likeness(faces_dir / SET, out, settings=settings, analyzer=analyzer, progress=False, **OPTIONS)
    assert read_manifest(out).status == "done"
    assert again.lora_path.read_bytes() == uninterrupted.lora_path.read_bytes()
    assert (out / "lora_kohya.safetensors").read_bytes() == (uninterrupted.path / "lora_kohya.safetensors").read_bytes()
    assert [r["step"] for r in again.card["curve"]] == [1, 2]
    assert not list(out.rglob(".*.tmp"))  # a killed copy's leftovers are gone
    code, shown, err = cli(tmp_path / "home", "likeness", "show", out)
    assert code == 0 and "chosen step" in shown and "time" in shown, err
