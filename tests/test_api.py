"""The public API is what users call: ``workbench.__all__`` holds the documented functions, types,
registries and errors (no store helpers), each with a docstring; docs/api.md and docs/cli.md are generated
from the code and current; importing the package does not load torch."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
HELPERS = {"atomic_write_json", "write_table", "inside", "folder_name", "read_manifest", "is_done", "Workspace",
           "CARD_FILE", "IMAGES", "parse_shard", "preload", "suite_files"}


def test_public_names_resolve_and_say_what_they_are():
    import workbench

    assert not HELPERS & set(workbench.__all__)
    undocumented = []
    for name in workbench.__all__:
        obj = workbench.__getattr__(name)
        assert obj is not None, name
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj):
            undocumented.append(name)
    assert undocumented == []


def test_front_end_helpers_are_reachable_but_not_public():
    import workbench

    for name in ("inside", "folder_name", "is_done"):
        assert callable(getattr(workbench, name)) and name not in workbench.__all__
    with pytest.raises(AttributeError):
        workbench.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", ["cli.md", "api.md"])
def test_the_generated_references_are_current(name):
    from workbench import reference

    text = {"cli.md": reference.cli_reference, "api.md": reference.api_reference}[name]()
    assert (DOCS / name).read_text(encoding="utf-8") == text, f"docs/{name} is stale: run python -m workbench.reference"


def test_import_is_cheap():
    code = "import sys, workbench; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
