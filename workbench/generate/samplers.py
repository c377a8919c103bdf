"""Sampler names -> diffusers scheduler configs, and which architectures each can drive.

Names follow the A1111/ComfyUI vocabulary researchers already use; the mapping follows diffusers'
scheduler docs ("A1111 / k-diffusion equivalents").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, unknown_name


@dataclass(frozen=True)
class Sampler:
    name: str
    scheduler: str  # diffusers class name
    options: dict[str, Any] = field(default_factory=dict)
    # what the model predicts: "noise" (epsilon or v on a discrete DDPM schedule: SD, SDXL) or "flow"
    # (rectified flow: FLUX); an architecture says which it is (models/architectures/)
    prediction: str = "noise"
    a1111: str = ""  # the name A1111 writes in its "parameters" text


SAMPLERS: dict[str, Sampler] = {s.name: s for s in [
    Sampler("euler", "EulerDiscreteScheduler", a1111="Euler"),
    Sampler("euler_a", "EulerAncestralDiscreteScheduler", a1111="Euler a"),
    Sampler("dpmpp_2m", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
            a1111="DPM++ 2M"),
    Sampler("dpmpp_2m_karras", "DPMSolverMultistepScheduler",
            {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}, a1111="DPM++ 2M Karras"),
    Sampler("ddim", "DDIMScheduler", a1111="DDIM"),
    Sampler("unipc", "UniPCMultistepScheduler", a1111="UniPC"),
    Sampler("flow_euler", "FlowMatchEulerDiscreteScheduler", prediction="flow", a1111="Euler"),
]}


def get_sampler(name: str, arch: str) -> Sampler:
    """The sampler ``name``, refused when it cannot drive architecture ``arch``."""
    from ..models.architectures import get_architecture

    if name not in SAMPLERS:
        raise unknown_name("sampler", name, SAMPLERS)
    sampler, prediction = SAMPLERS[name], get_architecture(arch).prediction
    if sampler.prediction != prediction:
        usable = [s for s, v in SAMPLERS.items() if v.prediction == prediction]
        kind = "rectified-flow" if prediction == "flow" else "noise-prediction"
        raise ConfigError(f"sampler {name!r} cannot drive a {arch} model ({kind}); use one of {', '.join(usable)}.")
    return sampler


def make_scheduler(name: str, arch: str, base_config: dict[str, Any]):
    """A scheduler for ``name`` built from the pipeline's own scheduler config plus the sampler options."""
    import diffusers

    sampler = get_sampler(name, arch)
    return getattr(diffusers, sampler.scheduler).from_config(base_config, **sampler.options)
