"""The public API: every name resolves, and importing the package does not load torch."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_resolve():
    import workbench

    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name


def test_import_is_cheap():
    code = "import sys, workbench; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
