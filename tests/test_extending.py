"""docs/extending.md's worked example of a new architecture runs as written: its module and its
registration, then a likeness of the new family trains (v-prediction), renders, exports kohya keys with the
new base version, and refuses the IP-Adapter arm it has no weights for. One module and one registry line
are all it takes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def example_blocks() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("## A model architecture", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture
def sd2(tmp_path, monkeypatch):
    """The documented module, importable as ``sd2_example``, and the documented registration (undone after)."""
    from workbench.models import FAMILIES
    from workbench.models.architectures import MODULES

    module, registration = example_blocks()
    assert "ARCHITECTURE = replace(SD" in module and 'register("sd2"' in registration
    (tmp_path / "sd2_example.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("workbench.models.architectures.MODULES", dict(MODULES))
    saved = dict(FAMILIES)
    exec(registration.replace("workbench.models.architectures.sd2", "sd2_example"), {})
    yield FAMILIES["tiny-sd2"]
    FAMILIES.clear()
    FAMILIES.update(saved)
    sys.modules.pop("sd2_example", None)


@pytest.mark.slow
def test_the_documented_architecture_trains_renders_and_exports(sd2, settings, analyzer, faces_dir, tmp_path):
    from safetensors import safe_open

    from workbench.errors import ConfigError
    from workbench.generate import generate
    from workbench.likeness import train_likeness
    from workbench.models.architectures import get_architecture

    assert get_architecture("sd2").name == "sd2" and sd2.pipeline_class == "StableDiffusionPipeline"
    home = settings.__class__(home=tmp_path / "home", device="cpu", offline=True)
    likeness = train_likeness(faces_dir / "aws_rek_subject1", tmp_path / "lk", family="tiny-sd2", settings=home,
                              analyzer=analyzer, progress=False, steps=2)
    with safe_open(str(likeness.path / "lora_kohya.safetensors"), "pt") as handle:
        assert handle.metadata()["ss_base_model_version"] == "sd_v2"
    scheduler = (home.models / "tiny-sd2" / "scheduler" / "scheduler_config.json").read_text()
    assert '"prediction_type": "v_prediction"' in scheduler
    run = generate(likeness, ["beach"], tmp_path / "run", samplers=["dpmpp_2m"], steps=[2], seeds=[0],
                   prompts_per_pack=1, settings=home, progress=False)
    assert len(run.table) == 1 and (run.path / run.table.path.iloc[0]).is_file()
    with pytest.raises(ConfigError, match="flow_euler.*cannot drive|cannot drive a sd2 model"):
        generate(likeness, ["beach"], tmp_path / "run2", samplers=["flow_euler"], steps=[2], settings=home,
                 progress=False)
    from workbench.arms import ip_adapter_weights

    real_sd2 = sd2.__class__(**{**sd2.__dict__, "tiny": False, "name": "sd2-real"})
    with pytest.raises(ConfigError, match="no IP-Adapter face arm for sd2-real"):
        ip_adapter_weights(real_sd2, home)


def test_the_example_is_one_module_and_one_registration():
    module, registration = example_blocks()
    assert module.splitlines()[0] == "# workbench/models/architectures/sd2.py"
    assert registration.count("register(") == 1
