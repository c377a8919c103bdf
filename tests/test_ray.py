"""Studies on a local Ray: the same table as the serial run, and a cell whose worker dies is
retried while the study still finishes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray")

from workbench.studies import load_spec, run_study  # noqa: E402
from workbench.studies.executors import CRASH_ONCE  # noqa: E402


@pytest.fixture()
def spec(tmp_path, faces_dir):
    path = tmp_path / "rays.yaml"
    path.write_text(yaml.safe_dump({
        "name": "rays", "kind": "sampler-steps", "family": "tiny-sd", "selfies": str(faces_dir / "lisa_debruine"),
        "train": {"steps": 2}, "packs": ["beach"], "prompts_per_pack": 1, "samplers": ["euler", "dpmpp_2m"],
        "steps": [2], "seeds": [0, 1], "recognizers": ["dlib"]}))
    return load_spec(path)


def _comparable(folder) -> pd.DataFrame:
    table = pd.read_parquet(folder / "study.parquet")
    table = table[table.metric != "seconds_per_image"]  # wall time differs by nature
    keys = ["cell", "metric", "image_id", "recognizer", "pack", "prompt_id", "seed"]
    return table.sort_values(keys, na_position="first").reset_index(drop=True)[[*keys, "value", "reason"]]


def _on_ray(spec, out, settings, home, **options):
    from dataclasses import replace

    try:
        return run_study(spec, out, settings=replace(settings, home=home), progress=False, executor="ray", num_cpus=2,
                         **options)
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_serial_table(spec, settings, tmp_path):
    from dataclasses import replace

    serial = run_study(spec, tmp_path / "serial", settings=replace(settings, home=tmp_path / "h1"), progress=False)
    parallel = _on_ray(spec, tmp_path / "ray", settings, tmp_path / "h2")
    a, b = _comparable(serial), _comparable(parallel)
    assert len(a) == len(b) and a[["cell", "metric", "image_id"]].equals(b[["cell", "metric", "image_id"]])
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    # the driver (a cluster's head node) plans, collects and assembles without torch, diffusers or a face model
    code = (f"import sys; from workbench.config import Settings; from workbench.studies import load_spec, run_study\n"
            f"from workbench.studies.executors import run_ray  # noqa\n"
            f"run_study(load_spec({str(spec.source)!r}), {str(tmp_path / 'ray')!r}, progress=False, executor='ray', "
            f"settings=Settings(home={str(tmp_path / 'h2')!r}, device='cpu', offline=True))\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'cv2', 'dlib') if m in sys.modules))")
    driver = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert driver.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "ray" / "report" / "index.html").is_file()


@pytest.mark.slow
def test_a_cell_whose_worker_dies_is_retried(spec, settings, tmp_path, monkeypatch):
    def not_in_the_driver(*args, **kwargs):
        raise AssertionError("the selfie check runs on a Ray worker, not in the driver")

    monkeypatch.setattr("workbench.selfies.check_selfies", not_in_the_driver)  # this process only
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE, f"lisa_debruine/r0/euler-2={marker}")
    out = _on_ray(spec, tmp_path / "retry", settings, tmp_path / "h3", max_retries=2)
    assert marker.is_file()  # the worker did die once
    table = pd.read_parquet(out / "study.parquet")
    assert set(table["cell"]) == {"euler-2", "dpmpp_2m-2"}  # and the study finished with that cell retried


@pytest.mark.slow
def test_a_cell_that_keeps_failing_is_recorded_and_the_others_finish(spec, settings, tmp_path, monkeypatch):
    from workbench.store import read_manifest

    marker = tmp_path / "never-created" / "marker"  # the crash repeats: its folder does not exist
    monkeypatch.setenv(CRASH_ONCE, f"lisa_debruine/r0/euler-2={marker}")
    out = _on_ray(spec, tmp_path / "fails", settings, tmp_path / "h4", max_retries=1)
    failed = read_manifest(out / "cells" / "lisa_debruine" / "r0" / "euler-2")
    assert failed.status == "failed" and failed.error
    assert read_manifest(out / "cells" / "lisa_debruine" / "r0" / "dpmpp_2m-2").status == "done"
    assert not (out / "study.parquet").exists()


@pytest.mark.slow
def test_a_suite_runs_as_one_ray_task(settings, tmp_path):
    from dataclasses import replace

    from workbench import resources
    from workbench.studies.suites import run_suite

    try:
        result = run_suite(resources.spec_path("tiny-demo", "suite"), settings=replace(settings, home=tmp_path / "h5"),
                           progress=False, executor="ray")
    finally:
        ray.shutdown()
    assert result.passed and (tmp_path / "h5" / "reports" / "suite-tiny-demo" / "checks.parquet").is_file()


def test_an_unreachable_ray_address_is_one_line_naming_the_fix():
    from workbench.cluster import connect
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"could not reach Ray at 'bogus:::'.*--address auto"):
        connect("bogus:::")
    assert not ray.is_initialized()


class ScriptedRay:
    """Just enough of Ray for ``_drain``: face tasks finish in the scripted order, then cell tasks in order;
    ``interrupt_after`` waits, Ctrl-C arrives."""

    def __init__(self, faces_in_order, interrupt_after: int | None = None):
        self.faces, self.submitted, self.results, self.cancelled = list(faces_in_order), [], {}, []
        self.waits, self.interrupt_after = 0, interrupt_after

    def remote(self, function):
        ray = self

        class Handle:
            def options(self, **_):
                return self

            def remote(self, spec, cells, *rest):
                ref = f"cells-{len(ray.submitted)}"
                ray.submitted.append((cells[0].identity, len(ray.faces)))  # photos still outstanding
                ray.results[ref] = [(cell, pd.DataFrame(), 0.0) for cell in cells]
                return ref

        return Handle()

    def wait(self, refs, num_returns, fetch_local):
        self.waits += 1
        if self.interrupt_after is not None and self.waits > self.interrupt_after:
            raise KeyboardInterrupt
        face = next((f for f in self.faces if f in refs), None)
        if face is not None:
            self.faces.remove(face)
            return [face], []
        return [next(r for r in refs if r.startswith("cells"))], []

    def get(self, ref):
        return self.results[ref]

    def cancel(self, ref, force):
        self.cancelled.append(ref)


def _two_people():
    from workbench.studies.kinds.base import Cell

    found = {"A": ["a1", "a2", "a3"], "B": ["b1", "b2"]}
    finding = {ref: person for person, refs in found.items() for ref in refs}
    return found, finding, [[Cell("x", "A", 0)], [Cell("x", "A", 1)], [Cell("x", "B", 0)]]


def test_ctrl_c_cancels_every_outstanding_task_and_stops_the_study():
    from workbench.studies.executors import _drain

    found, finding, batches = _two_people()
    ray_ = ScriptedRay(["a1", "a2", "a3", "b1", "b2"], interrupt_after=4)  # A's cells are in, B's last photo not
    with pytest.raises(KeyboardInterrupt):
        _drain(ray_, batches, {}, found, {}, "out", None, False, lambda *_: None, workers=2, finding=finding)
    assert sorted(ray_.cancelled) == ["b2", "cells-0", "cells-1"]


def test_a_persons_cells_wait_for_their_photos_and_for_no_photo_to_wait_for_a_worker():
    """The release rule of ``_drain``, on a scripted Ray: person A's photos finish first, but their cells go
    in only when fewer photos are outstanding than workers (else a cell would take a worker a photo waits
    for); B's cells only once B's photos are done."""
    from workbench.studies.executors import _drain

    found, finding, batches = _two_people()
    ray_ = ScriptedRay(["a1", "a2", "a3", "b1", "b2"])
    finished = []
    failures = _drain(ray_, batches, {}, found, {}, "out", None, False, lambda cell, *_: finished.append(cell),
                      workers=2, finding=finding)
    # A's photos were done with two of B's outstanding (one per worker): A's cells waited for one more
    assert ray_.submitted == [("A", 1), ("A", 1), ("B", 0)]
    assert not failures and len(finished) == 3
