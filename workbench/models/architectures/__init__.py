"""Architectures, registered by name: one module each (``sd``, ``sdxl``, ``flux``) holding everything the
workbench does differently for it — the pipeline, how it is trained (its ``Adapter``), its component configs,
what a render or probe passes, its memory profile, its kohya export and identity adapters — as an
``ARCHITECTURE``. Every other module asks ``get_architecture(family.arch)``; none branches on the name.

The registry is data (names and modules), so the families' table loads without torch; an architecture's
module loads when something asks for it. A new architecture: one module here and one line in ``MODULES``
(``docs/extending.md`` walks through one, and a test runs that walk-through)."""

from __future__ import annotations

import importlib

from ...errors import unknown_name

MODULES = {"sd": "workbench.models.architectures.sd", "sdxl": "workbench.models.architectures.sdxl",
           "flux": "workbench.models.architectures.flux"}


def register(name: str, module: str) -> None:
    """Add an architecture defined in ``module`` (its ``ARCHITECTURE``)."""
    MODULES[name] = module


def get_architecture(name: str):
    """The ``Architecture`` registered as ``name`` (a misspelt name gets a did-you-mean)."""
    if name not in MODULES:
        raise unknown_name("architecture", name, MODULES)
    return importlib.import_module(MODULES[name]).ARCHITECTURE


def adapter_for(arch: str, pipe, text_length: int | None = None):
    """The training ``Adapter`` of ``arch`` around ``pipe`` (``text_length``: the family's T5 tokens)."""
    adapter = get_architecture(arch).adapter(pipe)
    if text_length:
        adapter.text_length = text_length
    return adapter
