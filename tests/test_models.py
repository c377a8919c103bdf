from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.config import Settings
from workbench.errors import ConfigError, ModelNotAvailable
from workbench.models import FAMILIES, ensure_tiny, get_family, load_pipeline, resolve_source


@pytest.mark.parametrize("name", ["tiny-sd", "tiny-sdxl", "tiny-flux"])
def test_tiny_family_builds_saves_and_loads_back(name, settings):
    family = get_family(name)
    path = ensure_tiny(family, settings)
    assert (path / "model_index.json").is_file()
    pipe, source = load_pipeline(family, settings=settings)
    assert type(pipe).__name__ == family.pipeline_class and source.tiny and source.kind == "tiny"
    again, _ = load_pipeline(family, settings=settings)
    denoiser = "transformer" if family.arch == "flux" else "unet"
    for (k, a), (_, b) in zip(getattr(pipe, denoiser).state_dict().items(),
                              getattr(again, denoiser).state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    image = pipe("photo of ohwx person", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64) and np.asarray(image).std() > 0


def test_real_family_offline_gives_one_clear_error(tmp_path):
    settings = Settings(home=tmp_path, offline=True, device="cpu")
    with pytest.raises(ModelNotAvailable) as err:
        load_pipeline("sdxl", settings=settings)
    message = str(err.value)
    assert "stabilityai/stable-diffusion-xl-base-1.0" in message
    assert "hf download" in message and "huggingface-cli" not in message and "--base" in message


def test_local_dir_without_model_index_is_explained(tmp_path):
    settings = Settings(home=tmp_path, offline=True, device="cpu")
    with pytest.raises(ModelNotAvailable, match="model_index.json"):
        load_pipeline("sd15", base=str(tmp_path), settings=settings)


def test_local_dir_loads_through_the_real_path(settings, tmp_path):
    """A diffusers directory passed as --base goes through from_pretrained like real weights."""
    path = ensure_tiny(get_family("tiny-sd"), settings)
    pipe, source = load_pipeline("sd15", base=str(path), settings=settings)
    assert source.kind == "local" and type(pipe).__name__ == "StableDiffusionPipeline"


def test_sources_and_unknown_family(tmp_path):
    settings = Settings(home=tmp_path)
    assert resolve_source("sdxl", None, settings).kind == "hub"
    with pytest.raises(ModelNotAvailable):
        resolve_source("sdxl", "/no/such/file.safetensors", settings)
    with pytest.raises(ConfigError, match="tiny-sdxl"):
        get_family("tiny-sxdl")


def test_every_family_names_its_licence_and_targets():
    for family in FAMILIES.values():
        assert family.licence and family.lora_targets and family.resolution >= 64
        assert family.built_locally == (family.hub_id is None)


def test_each_launched_process_takes_its_own_gpu(monkeypatch):
    from workbench.config import Settings

    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Settings(device="cuda").resolved_device() == "cuda:1"
    assert Settings(device="cuda").resolved_dtype() == "float16"
    assert Settings(device="cpu").resolved_device() == "cpu"
    monkeypatch.delenv("LOCAL_RANK")
    assert Settings(device="cuda").resolved_device() == "cuda"
