"""Every artifact the workbench reads back is validated: a damaged, cut-short, hand-edited or foreign file
ends in one ``error:`` line naming the file, never a traceback; a LoRA full of NaNs is refused at load.
Each probe damages one file of a copy of a real tiny likeness or run and runs the CLI command that reads it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

SET = "aws_rek_subject1"


def one_error(result, *names) -> str:
    code, out, err = result
    assert code == 1 and "Traceback" not in err, (code, out[-500:], err[-2000:])
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:"), err[-2000:]
    for name in names:
        assert name in line, (name, line)
    return line


@pytest.fixture(scope="module")
def run_folder(tiny_likeness, settings, tmp_path_factory):
    from workbench.generate import generate

    return generate(tiny_likeness.path, ["beach"], tmp_path_factory.mktemp("probes") / "run", steps=[2], seeds=[0],
                    prompts_per_pack=1, settings=settings, progress=False).path


def _lora_with(path, change):
    state = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    state, metadata = change(state, dict(metadata))
    save_file(state, str(path), metadata=metadata)


LIKENESS_PROBES = {
    "lora-cut-short": lambda f: (f / "lora.safetensors").write_bytes((f / "lora.safetensors").read_bytes()[:-100]),
    "lora-garbage": lambda f: (f / "lora.safetensors").write_bytes(np.random.default_rng(0).bytes(4000)),
    "lora-missing": lambda f: (f / "lora.safetensors").unlink(),
    "lora-nan": lambda f: _lora_with(f / "lora.safetensors", lambda s, m: (
        {k: torch.full_like(v, float("nan")) for k, v in s.items()}, m)),
    "lora-bad-metadata": lambda f: _lora_with(f / "lora.safetensors", lambda s, m: (
        s, {**m, "lora_adapter_metadata": "{not json"})),
    "card-garbage": lambda f: (f / "likeness.json").write_text("{not json"),
    "card-wrong-types": lambda f: (f / "likeness.json").write_text(json.dumps(
        {**json.loads((f / "likeness.json").read_text()), "curve": "every step", "chosen_step": "last"})),
    "card-not-utf8": lambda f: (f / "likeness.json").write_bytes(b"\xff\xfe{}"),
    "manifest-garbage": lambda f: (f / "manifest.json").write_text("[1, 2"),
    "manifest-wrong-schema": lambda f: (f / "manifest.json").write_text(json.dumps({"kind": 5, "status": "maybe"})),
}


@pytest.mark.parametrize("probe", sorted(LIKENESS_PROBES))
def test_a_damaged_likeness_is_one_error_line(probe, tiny_likeness, tmp_path, cli):
    folder = tmp_path / "lk"
    shutil.copytree(tiny_likeness.path, folder)
    LIKENESS_PROBES[probe](folder)
    damaged = {"lora": "lora.safetensors", "card": "likeness.json", "manifest": "manifest.json"}[probe.split("-")[0]]
    one_error(cli(tmp_path / "home", "likeness", "show", folder), damaged)
    if probe.startswith("lora"):  # rendering refuses it before a pixel is drawn
        one_error(cli(tmp_path / "home", "generate", folder, "--pack", "beach", "--steps",
                          "2", "--prompts-per-pack", "1", "--out", tmp_path / "run"), damaged)
        assert not list((tmp_path / "run").rglob("*.png"))


def test_a_lora_of_other_shapes_is_refused_when_it_loads(tiny_likeness, tmp_path, cli):
    folder = tmp_path / "lk"
    shutil.copytree(tiny_likeness.path, folder)
    _lora_with(folder / "lora.safetensors", lambda s, m: ({k: torch.zeros(3, 5) for k in s}, m))
    one_error(cli(tmp_path / "home", "generate", folder, "--pack", "beach", "--steps", "2",
                      "--prompts-per-pack", "1", "--out", tmp_path / "run"), "lora.safetensors", "does not fit")


RUN_PROBES = {
    "table-garbage": lambda f: (f / "images.parquet").write_bytes(b"PAR1 not really"),
    "table-wrong-columns": lambda f: pd.DataFrame({"a": [1]}).to_parquet(f / "images.parquet"),
    "table-path-escapes": lambda f: pd.read_parquet(f / "images.parquet").assign(
        path="../../etc/passwd.png").to_parquet(f / "images.parquet"),
    "manifest-garbage": lambda f: (f / "manifest.json").write_text("{"),
}


@pytest.mark.parametrize("probe", sorted(RUN_PROBES))
def test_a_damaged_run_is_one_error_line(probe, tiny_likeness, run_folder, tmp_path, cli):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    RUN_PROBES[probe](folder)
    damaged = "manifest.json" if probe.startswith("manifest") else "images.parquet"
    one_error(cli(tmp_path / "home", "generate", tiny_likeness.path, "--pack", "beach",
                      "--steps", "2", "--prompts-per-pack", "1", "--out", folder), damaged)
    if damaged == "images.parquet":
        one_error(cli(tmp_path / "home", "score", folder, "--clip-model", "none"), damaged)


@pytest.fixture(scope="module")
def interrupted(settings, analyzer, faces_dir, tmp_path_factory):
    """A likeness stopped after its first checkpoint (as Ctrl-C leaves it)."""
    from workbench.likeness import train as train_module

    out = tmp_path_factory.mktemp("interrupted") / "lk"

    def stop(done, total, **info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_module.train_likeness(faces_dir / SET, out, settings=settings, analyzer=analyzer, progress=False,
                                    steps=4, checkpoint_every=1, callback=stop)
    return out


CHECKPOINT_PROBES = {
    "state-garbage": ("trainer_state.pt", lambda p: p.write_bytes(b"not a torch file")),
    "state-wrong-content": ("trainer_state.pt", lambda p: torch.save({"step": "one"}, p)),
    "config-garbage": ("train_config.json", lambda p: p.write_text("{")),
    "config-a-list": ("train_config.json", lambda p: p.write_text("[1, 2]")),
}


@pytest.mark.parametrize("probe", sorted(CHECKPOINT_PROBES))
def test_a_damaged_checkpoint_is_one_error_line(probe, interrupted, faces_dir, tmp_path, cli):
    folder = tmp_path / "lk"
    shutil.copytree(interrupted, folder)
    name, damage = CHECKPOINT_PROBES[probe]
    damage(folder / "checkpoints" / "step-000001" / name)
    line = one_error(cli(tmp_path / "home", "train", faces_dir / SET, "--out", folder,
                             "--steps", "4", "--checkpoint-every", "1"), name)
    assert "step-000001" in line


ONE_PROMPT = "prompts:\n  - {id: a, prompt: 'photo of {subject}'}\n"
YAML_PROBES = {
    "deep-nesting": "name: deep\ndescription: x\nprompts: " + "[" * 5000 + "]" * 5000 + "\n",
    "python-tag": "name: tag\ndescription: !!python/object/apply:os.system ['echo hi']\nprompts: []\n",
    "not-utf8": b"name: caf\xe9\ndescription: x\n",
    "steps-beyond-bounds": "name: slow\ndescription: x\nsteps: 1000000000\n" + ONE_PROMPT,
    "size-beyond-bounds": "name: big\ndescription: x\nsize: 100000\n" + ONE_PROMPT,
}


@pytest.mark.parametrize("probe", sorted(YAML_PROBES))
def test_a_hostile_pack_is_one_error_line(probe, tmp_path, cli):
    path = tmp_path / f"{probe}.yaml"
    text = YAML_PROBES[probe]
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    one_error(cli(tmp_path / "home", "packs", "validate", path), path.name)


SPEC_PROBES = {
    "family-a-number": "name: s\nkind: sampler-steps\nfamily: 5\nselfies: {faces}\n",
    "deep-nesting": "name: s\nkind: sampler-steps\ntrain: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "unknown-tag": "name: s\nkind: sampler-steps\nseeds: !!python/tuple [1, 2]\n",
    "seeds-beyond-bounds": "name: s\nkind: sampler-steps\nselfies: {faces}\nseeds: [-1]\n",
    "replicates-beyond-bounds": "name: s\nkind: sampler-steps\nselfies: {faces}\nreplicates: 100000\n",
    "train-rank-beyond-bounds": "name: s\nkind: sampler-steps\nselfies: {faces}\ntrain: {{rank: 200000}}\n",
}


@pytest.mark.parametrize("probe", sorted(SPEC_PROBES))
def test_a_hostile_study_spec_is_one_error_line(probe, faces_dir, tmp_path, cli):
    path = tmp_path / f"{probe}.yaml"
    path.write_text(SPEC_PROBES[probe].format(faces=faces_dir / SET) if "{faces}" in SPEC_PROBES[probe]
                    else SPEC_PROBES[probe])
    one_error(cli(tmp_path / "home", "study", path, "--out", tmp_path / "out"), path.name)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_captions_that_are_not_utf8_or_are_links_are_one_error_line(faces_dir, tmp_path, cli):
    selfies = tmp_path / "set"
    shutil.copytree(faces_dir / SET, selfies)
    captions = tmp_path / "captions.csv"
    captions.write_bytes(b"file,caption\n01.jpg,caf\xe9 {subject}\n")
    one_error(cli(tmp_path / "home", "train", selfies, "--out", tmp_path / "a", "--steps", "1",
                      "--captions", captions), "captions.csv", "UTF-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret")
    (selfies / "01.txt").symlink_to(secret)
    one_error(cli(tmp_path / "home", "train", selfies, "--out", tmp_path / "b", "--steps",
                      "1"), "01.txt", "link")


def test_damaged_tables_and_records_the_app_reads_are_named(run_folder, tmp_path):
    """What the app reads besides the CLI's: scores, favourites, a saved check, a job record."""
    from workbench.artifacts import read_check, read_favourites, read_scores
    from workbench.errors import ArtifactError
    from workbench.jobs import Jobs

    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    (folder / "scores.parquet").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="scores.parquet"):
        read_scores(folder)
    (folder / "favourites.json").write_text('{"not": "a list"}')
    with pytest.raises(ArtifactError, match="favourites.json"):
        read_favourites(folder)
    (tmp_path / "check").mkdir()
    (tmp_path / "check" / "check.json").write_bytes(b"\xff")
    with pytest.raises(ArtifactError, match="check.json"):
        read_check(tmp_path / "check")
    (tmp_path / "jobs" / "20260101-000000-abcdef").mkdir(parents=True)
    (tmp_path / "jobs" / "20260101-000000-abcdef" / "job.json").write_text("{")
    record = Jobs(tmp_path).get("20260101-000000-abcdef")
    assert record.state == "failed" and "cannot be read" in record.error
