"""The notebooks execute top to bottom on tiny models (nbclient), writing into a temporary
workspace; they are committed with outputs stripped."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_five_notebooks_with_stripped_outputs():
    assert [p.stem for p in NOTEBOOKS] == ["01-quickstart", "02-sampler-steps-study", "03-upload-quality-study",
                                           "04-identity-fidelity-qa", "05-identity-arms"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        assert "parameters" in notebook.cells[1].metadata.get("tags", []), path.name
        assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), f"{path.name}: strip outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORKBENCH_DEVICE", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # a cell that draws a figure shows it: an image in its outputs, not "<Figure size ...>"
    drawn = [c for c in notebook.cells if c.cell_type == "code" and c.source.rstrip().endswith("fig")]
    blind = [c.source[-80:] for c in drawn if not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert not blind, blind
