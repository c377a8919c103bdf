"""A real delete: the set, everything derived from it, a receipt, and a workspace scan that
finds no byte of the person afterwards."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace

import pytest
import yaml

from workbench.errors import ConfigError
from workbench.images import list_images
from workbench.retention import delete, sweep


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_delete_with_cascade_leaves_no_file_of_the_person(settings, analyzer, faces_dir, tmp_path):
    from workbench.generate import generate
    from workbench.likeness import train_likeness
    from workbench.studies import load_spec, run_study

    home = tmp_path / "home"
    user = replace(settings, home=home)
    person = home / "selfie-sets" / "lisa"
    shutil.copytree(faces_dir / "lisa_debruine", person)
    keep = home / "selfie-sets" / "subject1"
    shutil.copytree(faces_dir / "aws_rek_subject1", keep)
    hashes = {_sha(p) for p in list_images(person)}
    likeness = train_likeness(person, home / "likenesses" / "lisa", family="tiny-sd", settings=user,
                              analyzer=analyzer, progress=False, steps=1)
    run = generate(likeness, ["beach"], home / "runs" / "lisa-beach", steps=[2], seeds=[0], prompts_per_pack=1,
                   settings=user, progress=False)
    other = train_likeness(keep, home / "likenesses" / "subject1", family="tiny-sd", settings=user,
                           analyzer=analyzer, progress=False, steps=1)
    spec_path = tmp_path / "uq.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "uq", "kind": "upload-quality", "family": "tiny-sd",
                                         "selfies": str(person), "train": {"steps": 1}, "packs": ["beach"],
                                         "prompts_per_pack": 1, "steps": [2], "seeds": [0], "recognizers": ["dlib"],
                                         "degradations": [{"kind": "blur", "strength": 3}]}))
    study = run_study(load_spec(spec_path), home / "reports" / "study-uq", settings=user, progress=False)
    copies = [p for p in home.rglob("*") if p.is_file() and _sha(p) in hashes]
    assert not [p for p in copies if str(study) in str(p)]  # a finished study keeps no copy of the photos

    with pytest.raises(ConfigError, match="outside"):
        delete(faces_dir / "lisa_debruine", home, cascade=True)
    dry = delete(person, home, cascade=True, dry_run=True)
    assert person.exists() and dry.removed_files
    receipt = delete(person, home, cascade=True)
    assert not person.exists() and not likeness.path.exists() and not run.path.exists() and not study.exists()
    assert other.path.exists() and keep.exists()  # someone else's data stays
    assert {str(p) for p in (person / "01.jpg", likeness.lora_path)} <= set(receipt.removed_files)
    leftovers = [p for p in home.rglob("*") if p.is_file() and _sha(p) in hashes]
    assert leftovers == []


def test_sweep_removes_old_stages(settings, analyzer, faces_dir, tmp_path):
    from workbench.likeness import train_likeness

    home = tmp_path / "home"
    likeness = train_likeness(faces_dir / "aws_rek_subject1", home / "likenesses" / "old", family="tiny-sd",
                              settings=replace(settings, home=home), analyzer=analyzer, progress=False, steps=1)
    manifest = likeness.path / "manifest.json"
    data = json.loads(manifest.read_text())
    data["updated"] = "2020-01-01T00:00:00+00:00"
    manifest.write_text(json.dumps(data))
    assert sweep(home, "30d", dry_run=True).removed_files and likeness.path.exists()
    receipt = sweep(home, "30d")
    assert not likeness.path.exists() and str(likeness.lora_path) in receipt.removed_files
    with pytest.raises(ConfigError, match="expected a number"):
        sweep(home, "a month")
