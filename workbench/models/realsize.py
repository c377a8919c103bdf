"""Real-size families with random weights: the published configs of SD1.5, SDXL and FLUX.1, built in
memory, so train / generate / score run at real size and real memory with nothing downloaded.

The configs (in each architecture's module, ``architectures/``) are the ones in each model's
``*/config.json`` on the hub (stable-diffusion-v1-5, stable-diffusion-xl-base-1.0, FLUX.1-dev); a test
checks the parameter counts the model cards give (SD1.5 UNet 859.5 M, SDXL UNet 2567.5 M, FLUX
transformer 11.9 B, T5-XXL encoder 4.76 B). Tokenizers are the local byte-level/unigram ones of the tiny
families: their ids fit the real vocabularies.

They are built, not saved and loaded: 7-33 GB of random weights cost more to write and read back than to
initialise on the GPU. ``random-flux-small`` keeps FLUX's real width with one double and one single block
and a one-layer T5-XXL, so the FLUX path runs on a CPU.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .families import Family


@contextlib.contextmanager
def _building_on(device: str, dtype):
    """Create parameters directly on ``device`` in ``dtype``: initialising 12 B parameters in fp32 on
    the CPU and then copying them would take minutes and twice the memory."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def component_configs(family: Family) -> dict[str, dict[str, Any]]:
    """The configs a family's pipeline is built from (``random-flux-small`` at reduced depth)."""
    from .architectures import get_architecture

    return get_architecture(family.arch).realsize_components(small=family.name.endswith("-small"))


def build_realsize_pipeline(family: Family, device: str = "cpu", dtype=None, seed: int = 20261126) -> Any:
    """A pipeline of ``family``'s real configs with seeded random weights, built on ``device``."""
    import torch

    from .architectures import get_architecture

    torch.manual_seed(seed)
    if str(device).startswith("cuda"):
        torch.cuda.manual_seed_all(seed)
    return get_architecture(family.arch).assemble(component_configs(family),
                                                  _building_on(device, dtype or torch.float32))


def parameter_counts(family: Family) -> dict[str, int]:
    """Parameters per component, counted on the meta device (no memory, no time): the test of the configs."""
    import torch

    from .architectures import get_architecture

    pipe = get_architecture(family.arch).assemble(component_configs(family), torch.device("meta"))
    return {name: sum(p.numel() for p in getattr(pipe, name).parameters())
            for name in component_configs(family) if name != "scheduler"}
