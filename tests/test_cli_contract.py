"""The README's command table is a contract: every command in it runs once, as written (optional parts left
out, placeholders filled with tiny models and sample photos in a temporary workspace), and every command the
CLI has is in the table. A README command that breaks (``faces verify`` once failed with an ImportError and
nothing noticed) fails here."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """Every ``workbench ...`` command of the README's command table, optional ``[...]`` parts removed and
    ``a|b|c`` alternatives expanded."""
    commands = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `workbench"):
            continue
        cell = re.split(r"(?<!\\)\|", line)[1]
        for written in re.findall(r"`(workbench [^`]+)`", cell):
            text = written.replace("\\|", "|")
            while re.search(r"\[[^\[\]]*\]", text):
                text = re.sub(r"\s*\[[^\[\]]*\]", "", text)
            words = text.split()
            alternatives = [i for i, w in enumerate(words) if "|" in w and not w.startswith("-")]
            if not alternatives:
                commands.append(" ".join(words))
                continue
            # `packs list|show NAME|validate FILE`: each alternative with the words that follow it
            head, tail = words[:alternatives[0]], " ".join(words[alternatives[0]:])
            commands += [" ".join([*head, *choice.split()]) for choice in tail.split("|")]
    return commands


def test_the_table_is_read_as_written():
    commands = readme_commands()
    assert "workbench packs show NAME" in commands and "workbench faces verify DIR" in commands
    assert "workbench delete --older-than 30d" in commands and "workbench check DIR" in commands
    assert len(commands) >= 20


def test_every_cli_command_is_in_the_readme_table():
    import typer.main

    from workbench.cli import app

    group = typer.main.get_command(app)
    listed = " ".join(readme_commands())
    for name, command in group.commands.items():
        names = [f"{name} {sub}" for sub in command.commands] if hasattr(command, "commands") else [name]
        for full in names:
            assert f"workbench {full}" in listed, f"`workbench {full}` is not in the README's command table"


@pytest.fixture(scope="module")
def filled(tmp_path_factory, faces_dir):
    """What each placeholder stands for, per command: sample photos copied into a temporary workspace."""
    from workbench.models.tiny import build_tiny_clip

    root = tmp_path_factory.mktemp("contract")
    home = root / "workspace"
    selfies = home / "selfie-sets" / "me"
    shutil.copytree(faces_dir / "aws_rek_subject1", selfies)
    people = root / "people"
    for person in ("aws_rek_subject1", "lisa_debruine", "london_004"):
        shutil.copytree(faces_dir / person, people / person)
    spec = root / "study.yaml"
    spec.write_text(yaml.safe_dump({"name": "contract", "kind": "sampler-steps", "family": "tiny-sd",
                                    "selfies": str(selfies), "train": {"steps": 2}, "packs": ["beach"],
                                    "prompts_per_pack": 1, "samplers": ["euler"], "steps": [2], "seeds": [0],
                                    "recognizers": ["dlib"]}))
    values = {
        "SET": selfies, "NEWSET": home / "selfie-sets" / "blurred", "LIKENESS": home / "likenesses" / "me",
        "RUN": home / "runs" / "me", "NAME": "beach", "FILE": ROOT / "workbench" / "packs" / "builtin" / "beach.yaml",
        ("check", "DIR"): selfies, ("train", "DIR"): selfies, ("faces", "DIR"): people,
        ("score", "--clip-model", "DIR"): build_tiny_clip(root / "tiny-clip"),
        ("score", "--fid-reference", "DIR"): selfies, ("study", "SPEC"): spec, ("suite", "SPEC"): "tiny-demo",
        ("delete", "PATH"): home / "selfie-sets" / "blurred",
    }
    return home, values


def concrete(command: str, values: dict) -> list[str]:
    words = command.split()[1:]
    out = []
    for index, word in enumerate(words):
        if word.isupper() and len(word) > 1:
            before = words[index - 1] if index and words[index - 1].startswith("--") else None
            for key in ((words[0], before, word), (words[0], word), word):
                if key in values:
                    out.append(str(values[key]))
                    break
            else:
                raise AssertionError(f"no value for {word} in `{command}`: add one to the test's table")
        else:
            out.append(word)
    return out


def serve_once(home: Path, argv: list[str]) -> None:
    """``workbench app``: the server starts and answers its page, then stops."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"WORKBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "WORKBENCH_DEVICE": "cpu", "PATH": "/usr/bin:/bin",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", *argv, "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200 and "Likeness Workbench" in page.read().decode()
                    return
            except OSError:
                assert time.monotonic() < deadline, "the app did not answer within 2 minutes"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_every_readme_command_runs_as_written(filled, cli):
    home, values = filled
    ran = []
    for command in readme_commands():
        argv = concrete(command, values)
        if argv[0] == "app":
            serve_once(home, argv)
        else:
            code, out, err = cli(home, *argv)
            said = f"`{command}` -> `workbench {' '.join(argv)}` exited {code}:\n{out[-1500:]}\n{err[-3000:]}"
            assert code == 0, said
        ran.append(command)
    assert len(ran) == len(readme_commands())
    assert (values["RUN"] / "scores.parquet").is_file() and not values["NEWSET"].exists()  # scored; deleted


def test_help_texts_list_what_the_registries_hold():
    """Choices in --help come from the registries, so a new sampler, arm, study kind, recognizer, family,
    degradation or app tab shows up there without an edit to the CLI."""
    import typer.main

    from workbench import ARMS, FAMILIES, RECOGNIZERS, SAMPLERS
    from workbench.app import TABS
    from workbench.cli import app
    from workbench.selfies.degradations import KINDS as DEGRADATIONS
    from workbench.studies.kinds import KINDS

    commands = typer.main.get_command(app).commands

    def option_help(command, name):
        return next(p.help for p in commands[command].params if p.name == name)

    for registry, text in ((SAMPLERS, option_help("generate", "sampler")), (ARMS, option_help("generate", "arm")),
                           (FAMILIES, option_help("train", "family")), (KINDS, commands["study"].help),
                           (RECOGNIZERS, option_help("score", "recognizers")), (TABS, commands["app"].help),
                           (DEGRADATIONS, option_help("degrade", "kind"))):
        missing = [name for name in registry if name not in text]
        assert missing == [], (missing, text)
