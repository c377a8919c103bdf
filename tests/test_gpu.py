"""On a GPU (opt-in: WORKBENCH_GPU_TESTS=1): the same code path as on CPU, on CUDA in half precision — a
tiny SDXL likeness trains in bf16 with its checkpoint probe, renders, and every weight and pixel is finite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


def test_a_tiny_sdxl_likeness_trains_and_renders_on_cuda_in_bf16(settings, analyzer, faces_dir, tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    from workbench.generate import generate
    from workbench.likeness import train_likeness

    assert torch.cuda.is_available(), "WORKBENCH_GPU_TESTS=1 needs a CUDA device"
    gpu = replace(settings, device="cuda")
    likeness = train_likeness(faces_dir / "aws_rek_subject1", tmp_path / "lk", family="tiny-sdxl", settings=gpu,
                              analyzer=analyzer, progress=False, steps=4, precision="bf16")
    assert likeness.card["config"]["precision"] == "bf16" and len(likeness.card["curve"]) >= 1
    assert all(torch.isfinite(t).all() for t in load_file(str(likeness.lora_path)).values())
    run = generate(likeness, ["beach"], tmp_path / "run", steps=[4], seeds=[0], prompts_per_pack=1, settings=gpu,
                   progress=False)
    from PIL import Image

    pixels = np.asarray(Image.open(run.path / run.table.path.iloc[0]))
    assert pixels.std() > 0 and np.isfinite(pixels).all()
