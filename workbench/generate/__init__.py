"""Generation across packs x samplers x steps x seeds."""

from .runner import GenerationRun, generate, load_renderer
from .samplers import SAMPLERS, get_sampler, make_scheduler

__all__ = ["SAMPLERS", "GenerationRun", "generate", "get_sampler", "load_renderer", "make_scheduler"]


class _CallableModule(__import__("types").ModuleType):
    """``from workbench import generate`` names both this package and its main function (the package is
    bound to that name as soon as it is imported), so the package itself renders when called."""

    def __call__(self, *args, **kwargs):
        return generate(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
