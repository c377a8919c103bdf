"""Likeness training on tiny families: finite loss, a LoRA that loads and changes output, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from workbench.likeness import Likeness, train_likeness
from workbench.likeness import train as train_module
from workbench.models import load_pipeline

SET = "aws_rek_subject1"


def _render(pipe, seed=0):
    return np.asarray(pipe("photo of ohwx person", num_inference_steps=2, height=64, width=64,
                           generator=torch.Generator().manual_seed(seed)).images[0], dtype=np.float32)


@pytest.mark.parametrize("family", ["tiny-sd", "tiny-sdxl", "tiny-flux"])
def test_train_load_and_change_output(family, settings, analyzer, faces_dir, tmp_path):
    likeness = train_likeness(faces_dir / SET, tmp_path / "lk", family=family, settings=settings, analyzer=analyzer,
                              progress=False, steps=4, checkpoint_every=2, learning_rate=5e-3)
    card = likeness.card
    assert [row["step"] for row in card["curve"]] == [2, 4]
    assert all(np.isfinite(row["loss"]) for row in card["curve"])
    assert card["chosen_step"] in (2, 4) and card["selection_reason"]
    assert not set(card["held_out_files"]) & set(card["training_files"])
    assert likeness.lora_path.is_file() and not list(likeness.path.glob("*.jpg"))  # no copy of the selfies
    assert len(list((likeness.path / "validation").glob("*.png"))) == 2 * 4
    pipe, _ = load_pipeline(family, settings=settings)
    before = _render(pipe)
    pipe.load_lora_weights(likeness.path, weight_name="lora.safetensors")
    after = _render(pipe)
    assert np.abs(before - after).max() > 0  # the adapter is real and applied


def test_finished_likeness_is_not_retrained(tiny_likeness, settings, analyzer, faces_dir, monkeypatch):
    monkeypatch.setattr(train_module, "load_pipeline", lambda *a, **k: pytest.fail("retrained"))
    again = train_likeness(faces_dir / SET, tiny_likeness.path, settings=settings, analyzer=analyzer, progress=False)
    assert again.card["chosen_step"] == tiny_likeness.card["chosen_step"]


def test_killed_run_resumes_to_the_same_result(settings, analyzer, faces_dir, tmp_path, monkeypatch):
    options = dict(family="tiny-sd", settings=settings, analyzer=analyzer, progress=False, steps=6,
                   checkpoint_every=2, learning_rate=1e-3)
    straight = train_likeness(faces_dir / SET, tmp_path / "straight", **options)

    real_save = train_module.save_checkpoint

    def die_after_first(out, pipe, adapter, optimizer, schedule, step, *rest):
        path = real_save(out, pipe, adapter, optimizer, schedule, step, *rest)
        if step == 4:
            raise KeyboardInterrupt  # killed right after the step-4 checkpoint
        return path

    monkeypatch.setattr(train_module, "save_checkpoint", die_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_likeness(faces_dir / SET, tmp_path / "resumed", **options)
    assert not (tmp_path / "resumed" / "likeness.json").exists()
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    resumed = train_likeness(faces_dir / SET, tmp_path / "resumed", **options)
    assert [r["step"] for r in resumed.card["curve"]] == [2, 4, 6]
    a, b = load_file(straight.lora_path), load_file(resumed.lora_path)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_likeness_load_refuses_unfinished(tmp_path):
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="workbench train"):
        Likeness.load(tmp_path)
