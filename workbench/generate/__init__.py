"""Generation across packs x samplers x steps x seeds."""

from .runner import GenerationRun, generate, load_renderer
from .samplers import SAMPLERS, get_sampler, make_scheduler

__all__ = ["SAMPLERS", "GenerationRun", "generate", "get_sampler", "load_renderer", "make_scheduler"]
