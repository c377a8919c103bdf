"""Hostile and careless input: every case built here ends in a card or one error line,
nothing escapes its folder, nothing crashes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from workbench.errors import ConfigError, WorkbenchError


def _cli(*args, env_home=None):
    env = {"HF_HUB_OFFLINE": "1", "WORKBENCH_DEVICE": "cpu", "PATH": "/usr/bin:/bin"}
    if env_home:
        env["WORKBENCH_HOME"] = str(env_home)
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _one_error_line(done):
    assert done.returncode == 1, (done.stdout[-500:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def hostile_set(tmp_path_factory, faces_dir):
    """Two good photos plus everything that must not crash or escape."""
    folder = tmp_path_factory.mktemp("hostile")
    for name in ("01.jpg", "02.jpg"):
        shutil.copyfile(faces_dir / "aws_rek_subject1" / name, folder / name)
    Image.new("RGB", (8, 8), (200, 150, 120)).save(folder / "tiny.png")
    Image.new("RGB", (3000, 1), (200, 150, 120)).save(folder / "strip.png")
    Image.new("RGB", (64, 64)).save(folder / "anim.gif")
    (folder / "noext").write_bytes((faces_dir / "aws_rek_subject1" / "03.jpg").read_bytes())
    (folder / "notes").mkdir()
    (folder / "hostname.jpg").symlink_to("/etc/hostname")
    outside = tmp_path_factory.mktemp("someone-else") / "them.jpg"
    shutil.copyfile(faces_dir / "lisa_debruine" / "01.jpg", outside)
    (folder / "them.jpg").symlink_to(outside)
    return folder


def test_every_entry_gets_a_card_and_nothing_crashes(hostile_set, analyzer):
    from workbench.selfies import check_selfies

    for _ in range(3):  # repeated in one process: the CNN fallback once corrupted the heap here
        report = check_selfies(hostile_set, analyzer=analyzer, progress=False)
    cards = {p.file: p for p in report.photos}
    assert set(cards) == {"01.jpg", "02.jpg", "tiny.png", "strip.png", "anim.gif", "noext", "notes", "hostname.jpg",
                          "them.jpg"}
    for name in ("tiny.png", "strip.png", "anim.gif", "noext", "notes", "hostname.jpg", "them.jpg"):
        assert cards[name].flags == ["unreadable"] and cards[name].advice, name
    assert "link" in cards["them.jpg"].advice[0] and "folder" in cards["notes"].advice[0]
    assert "8x8" in cards["tiny.png"].advice[0] and "3000x1" in cards["strip.png"].advice[0]
    assert {p.name for p in report.training_files} <= {"01.jpg", "02.jpg"}  # a link is never trained on


def test_tiny_images_never_reach_the_detectors(analyzer):
    for size in ((1, 1), (8, 8), (3000, 1), (1, 3000)):
        assert analyzer.analyze(Image.new("RGB", size, (128, 100, 90))) == []


def test_pack_contents_cannot_become_paths_or_overwrite(tmp_path):
    from workbench.packs.schema import load_pack

    escaping = tmp_path / "escape.yaml"
    escaping.write_text("name: evil\ndescription: x\nprompts:\n  - {id: ../../../../escaped-prompt, prompt: "
                        "'photo of {subject}'}\n")
    with pytest.raises(ConfigError, match="prompt ids are names"):
        load_pack(escaping)
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: twice\ndescription: x\nprompts:\n  - {id: a, prompt: 'photo of {subject}'}\n"
                     "  - {id: a, prompt: 'portrait of {subject}'}\n")
    with pytest.raises(ConfigError, match="appears twice"):
        load_pack(twice)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in _one_error_line(_cli("packs", "validate", latin))
    assert "no such file" in _one_error_line(_cli("packs", "validate", tmp_path / "nope.yaml"))


def test_spec_contents_cannot_become_paths(tmp_path, faces_dir):
    from workbench.studies import load_spec

    base = f"kind: upload-quality\nselfies: {faces_dir / 'lisa_debruine'}\n"
    cases = {"name": ("name: ../../escaped\n" + base, "names are"),
             "kind": ("name: ok\n" + base + "degradations:\n  - {kind: ../../x, strength: 1}\n", "unknown degradation")}
    for label, (text, message) in cases.items():
        path = tmp_path / f"{label}.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_spec(path)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    from workbench.studies import load_spec

    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{'abcdefghij'[i]}: &{'abcdefghij'[i]} [{', '.join(['*' + 'abcdefghij'[i - 1]] * 10)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nname: x\nkind: sampler-steps\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(ConfigError, match="expands to more than"):
        load_spec(bomb)


def test_malformed_likenesses_get_one_line(tmp_path, tiny_likeness):
    cases = {"bad-json": ("{not json", True), "empty-json": ("", True), "no-keys": ("{}", True),
             "empty-lora": (None, b""), "random-lora": (None, np.random.default_rng(0).bytes(300)),
             "truncated-lora": (None, tiny_likeness.lora_path.read_bytes()[:100])}
    for name, (card, lora) in cases.items():
        folder = tmp_path / name
        shutil.copytree(tiny_likeness.path, folder)
        if card is not None:
            (folder / "likeness.json").write_text(card)
        if isinstance(lora, bytes):
            (folder / "lora.safetensors").write_bytes(lora)
        message = _one_error_line(_cli("likeness", "show", folder))
        assert str(folder) in message or "likeness" in message, (name, message)


def test_ranges_are_checked_where_options_are_parsed(tmp_path, faces_dir):
    assert "fraction" in _one_error_line(_cli("degrade", faces_dir / "lisa_debruine", "--kind", "blur", "--strength",
                                              "1", "--fraction", "2", "--out", tmp_path / "d1"))
    assert "strength" in _one_error_line(_cli("degrade", faces_dir / "lisa_debruine", "--kind", "darken",
                                              "--strength", "-5", "--out", tmp_path / "d2"))
    for args in (("train", faces_dir / "lisa_debruine", "--out", tmp_path / "t", "--steps", "0"),
                 ("train", faces_dir / "lisa_debruine", "--out", tmp_path / "t", "--rank", "0"),
                 ("generate", "none", "--pack", "beach", "--steps", "0", "--out", tmp_path / "g")):
        done = _cli(*args)
        assert done.returncode != 0 and "Traceback" not in done.stderr and not (tmp_path / "g").exists()


def test_missing_weights_fail_before_the_selfie_check(tmp_path, faces_dir):
    import time

    started = time.perf_counter()
    message = _one_error_line(_cli("train", faces_dir / "aws_rek_subject1", "--out", tmp_path / "lk", "--family",
                                   "sdxl", env_home=tmp_path / "home"))
    assert "hf download" in message and time.perf_counter() - started < 30
    assert not (tmp_path / "lk" / "check").exists()


def test_a_missing_reference_photo_is_named(tmp_path, tiny_likeness, settings):
    from workbench.generate import generate
    from workbench.metrics import score

    folder = tmp_path / "lk"
    shutil.copytree(tiny_likeness.path, folder)
    card = json.loads((folder / "likeness.json").read_text())
    card["splits"]["test"] = [str(tmp_path / "gone.jpg")]
    (folder / "likeness.json").write_text(json.dumps(card))
    run = generate(folder, ["beach"], tmp_path / "run", steps=[2], seeds=[0], prompts_per_pack=1, settings=settings,
                   progress=False)
    with pytest.raises(WorkbenchError, match="gone.jpg is missing"):
        score(run.path, progress=False, clip_model=None)


def test_a_small_png_that_decodes_huge_is_refused_before_decoding(tmp_path):
    import tracemalloc

    from workbench.images import ImageTooLarge, load_image

    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (7999, 7999), (0, 0, 0)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 500_000
    tracemalloc.start()
    with pytest.raises(ImageTooLarge, match="decodes to about"):
        load_image(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20  # refused from the header, not after decoding


def test_check_exits_2_on_a_set_that_cannot_train(faces_dir, tmp_path, cli):
    """A script can gate on `workbench check`: 0 ready or usable, 2 not ready, 1 an error."""
    code, out, _ = cli(tmp_path / "home", "check", faces_dir / "_noface")
    assert code == 2 and "verdict: not_ready" in out
    code, out, _ = cli(tmp_path / "home", "check", faces_dir / "aws_rek_subject1")
    assert code == 0 and "verdict: usable_with_warnings" in out
    code, _, err = cli(tmp_path / "home", "check", tmp_path / "missing")
    assert code == 1 and err.startswith("error:")


def test_the_html_report_never_shows_what_a_link_points_to(hostile_set, tmp_path, cli):
    """The check refuses links; its HTML report must not embed the photo a link points to either."""
    import base64
    import re

    page = tmp_path / "report.html"
    cli(tmp_path / "home", "check", hostile_set, "--html", page)
    html = page.read_text()
    cards = re.findall(r"<div class=\"card\">(.*?)</ul></div>", html)
    linked = [card for card in cards if "them.jpg" in card or "hostname.jpg" in card]
    assert linked and all("<img" not in card for card in linked)
    images = [base64.b64decode(src) for src in re.findall(r"base64,([A-Za-z0-9+/=]+)", html)]
    assert len(images) == 2  # the two real photos of the set, nothing else
