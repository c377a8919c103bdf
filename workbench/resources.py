"""Where the shipped resources are — the sample selfies, the study and suite specs — whether the
workbench runs from a checkout or from an installed wheel (which puts them under
``<prefix>/share/likeness-workbench``). ``WORKBENCH_RESOURCES`` points at another copy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import WorkbenchError

SHARE = Path("share") / "likeness-workbench"


def _candidates() -> list[Path]:
    package = Path(__file__).resolve().parent
    found = []
    if os.environ.get("WORKBENCH_RESOURCES"):
        found.append(Path(os.environ["WORKBENCH_RESOURCES"]).expanduser())
    found.append(package.parent)  # a checkout: <repo>/workbench, <repo>/datasets, <repo>/evaluation
    found.append(package.parent / SHARE)  # pip install --target DIR: DIR/workbench, DIR/share/...
    found.append(Path(sys.prefix) / SHARE)
    if len(package.parents) > 3:  # pip install --prefix P: P/lib/pythonX.Y/site-packages/workbench
        found.append(package.parents[3] / SHARE)
    import site

    found.append(Path(site.getuserbase()) / SHARE)
    return found


def root() -> Path:
    for candidate in _candidates():
        if (candidate / "evaluation" / "suites").is_dir() and (candidate / "datasets" / "sample-selfies").is_dir():
            return candidate
    raise WorkbenchError("the workbench's sample selfies and specs were not found (looked in "
                         + ", ".join(str(c) for c in _candidates()) + "); reinstall the package, or set "
                         "WORKBENCH_RESOURCES to a checkout of the repository.")


def samples() -> Path:
    return root() / "datasets" / "sample-selfies"


def suites() -> Path:
    return root() / "evaluation" / "suites"


def studies() -> Path:
    return root() / "evaluation" / "studies"


def spec_path(value: str | os.PathLike, kind: str) -> Path:
    """A spec file as given, or a shipped one by name (``workbench study sampler-steps-tiny``)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    folder = studies() if kind == "study" else suites()
    shipped = folder / f"{Path(value).name.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(p.stem for p in sorted(folder.glob("*.yaml")))
    raise WorkbenchError(f"{value}: no such {kind} spec file, and no shipped {kind} of that name (shipped: {known}).")
