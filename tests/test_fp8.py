"""The opt-in fp8 rendering path: exact where e4m3 is exact, close elsewhere, wired through generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.errors import ConfigError
from workbench.models.fp8 import Float8Linear, check_fp8_device, quantize_fp8, uses_fp8


def test_exact_when_every_value_is_representable():
    """Weights and inputs whose row maxima are powers of two and whose values are e4m3 numbers after
    scaling: the fp8 product equals the float one exactly."""
    linear = torch.nn.Linear(32, 16)
    generator = torch.Generator().manual_seed(0)
    levels = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    with torch.no_grad():
        linear.weight.copy_(levels[torch.randint(0, 7, (16, 32), generator=generator)])
        linear.weight[:, 0] = 2.0  # every row's maximum is 2: scale 2 / 448, values land on 448 * 2^-k
        linear.bias.copy_(torch.linspace(-1, 1, 16))
    x = levels[torch.randint(0, 7, (3, 5, 32), generator=generator)]
    x[..., 0] = 2.0
    assert torch.equal(Float8Linear(linear)(x), linear(x))


def test_close_on_random_weights():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 128)
    x = torch.randn(8, 256)
    relative = (Float8Linear(linear)(x) - linear(x)).norm() / linear(x).norm()
    assert 0 < relative < 0.05  # e4m3 keeps 3 mantissa bits: a few percent, never zero


def test_only_block_linears_change():
    from workbench.config import Settings
    from workbench.models import get_family, load_pipeline

    pipe, _ = load_pipeline(get_family("tiny-flux"), settings=Settings())
    transformer = pipe.transformer
    eligible = sum(type(m) is torch.nn.Linear for block in transformer.transformer_blocks
                   for m in block.modules()) + sum(type(m) is torch.nn.Linear
                                                   for block in transformer.single_transformer_blocks
                                                   for m in block.modules())
    assert not uses_fp8(transformer)
    assert quantize_fp8(transformer) == eligible > 0 and uses_fp8(transformer)
    assert type(transformer.x_embedder) is torch.nn.Linear and type(transformer.proj_out) is torch.nn.Linear
    with pytest.raises(ConfigError, match="no block linears"):
        quantize_fp8(torch.nn.Sequential(torch.nn.Linear(16, 16)))


def test_devices_without_fp8_are_refused():
    check_fp8_device("cpu")
    with pytest.raises(ConfigError, match="not meta"):
        check_fp8_device("meta")


def test_generate_with_fp8(settings, tmp_path):
    """Same grid and image ids as bf16, pixels close, the setting in the manifest, and a run folder
    never mixes the two."""
    from workbench import generate

    kwargs = dict(family="tiny-flux", seeds=[0], prompts_per_pack=1, settings=settings, progress=False)
    plain = generate(None, ["studio-portrait"], tmp_path / "plain", **kwargs)
    fp8 = generate(None, ["studio-portrait"], tmp_path / "fp8", fp8=True, **kwargs)
    assert list(plain.table["image_id"]) == list(fp8.table["image_id"])
    for a, b in zip(plain.table["path"], fp8.table["path"], strict=True):
        x = np.asarray(Image.open(plain.path / a), np.float32)
        y = np.asarray(Image.open(fp8.path / b), np.float32)
        assert 0 < np.abs(x - y).mean() < 2.0
    assert json.loads((fp8.path / "manifest.json").read_text())["config"]["fp8"] is True
    with pytest.raises(ConfigError, match="rendered with fp8"):
        generate(None, ["studio-portrait"], tmp_path / "fp8", **{**kwargs, "seeds": [0, 1]})


def test_a_renderer_decides_its_own_fp8(settings, tmp_path):
    """With ``renderer=``, the manifest records what the renderer does; a contradicting flag is refused."""
    from workbench import generate
    from workbench.generate import load_renderer
    from workbench.models import get_family

    renderer = load_renderer(None, get_family("tiny-flux"), None, settings, fp8=True)
    kwargs = dict(family="tiny-flux", seeds=[0], prompts_per_pack=1, settings=settings, progress=False,
                  renderer=renderer)
    run = generate(None, ["studio-portrait"], tmp_path / "run", **kwargs)
    assert json.loads((run.path / "manifest.json").read_text())["config"]["fp8"] is True
    with pytest.raises(ConfigError, match="loaded with fp8"):
        generate(None, ["studio-portrait"], tmp_path / "other", fp8=False, **kwargs)
