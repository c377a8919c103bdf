"""Generation across packs x samplers x steps x seeds.

The runner loads on first use (it brings torch and diffusers); the sampler registry does not, so the CLI's
help can list the samplers without importing torch."""

from typing import Any

from .samplers import SAMPLERS, get_sampler, make_scheduler

__all__ = ["SAMPLERS", "GenerationRun", "generate", "get_sampler", "load_renderer", "make_scheduler"]
_RUNNER = {"GenerationRun", "generate", "load_renderer"}


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(__import__("types").ModuleType):
    """``from workbench import generate`` names both this package and its main function (the package is
    bound to that name as soon as it is imported), so the package itself renders when called."""

    def __call__(self, *args, **kwargs):
        from .runner import generate

        return generate(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
