"""Study kinds, registered by name. A kind is one module in this package: its spec fields (``Options``),
its cells, one cell's table, and its report and plots (``Kind``). The registry is data (a name, where the
kind lives, one line on what it studies), so help texts and a spec's check of its ``kind`` never load a
kind's code; a kind's module loads when a study of that kind does.

A new kind: a module here with ``Options`` (a subclass of ``base.Options``) and ``Kind`` (a ``StudyKind``),
and one line in ``KINDS``."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from ...errors import unknown_name

KINDS: dict[str, tuple[str, str]] = {
    "sampler-steps": ("workbench.studies.kinds.sampler_steps",
                      "one likeness per person and replicate; a cell per sampler x steps"),
    "upload-quality": ("workbench.studies.kinds.upload_quality",
                       "each degradation of the uploads vs the clean set, beside what the upload gate said"),
    "arms": ("workbench.studies.kinds.arms",
             "the likeness, the base model and the IP-Adapter arms on the same grid and test photos"),
}


def kind_module(name: str) -> Any:
    """The module of kind ``name`` (a misspelt name gets a did-you-mean)."""
    if name not in KINDS:
        raise unknown_name("study kind", name, KINDS)
    return importlib.import_module(KINDS[name][0])


def get_kind(name: str) -> type:
    """The ``StudyKind`` class registered as ``name``."""
    return kind_module(name).Kind


def describe_kinds() -> str:
    """``name (what it studies); ...`` for help texts."""
    return "; ".join(f"{name} ({summary})" for name, (_, summary) in KINDS.items())


class _Kinds(Mapping):
    """``STUDY_KINDS[name]`` -> the kind's class, loaded on first use; iterating lists the names only."""

    def __getitem__(self, name: str) -> type:
        return get_kind(name)

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)


STUDY_KINDS: Mapping[str, type] = _Kinds()
