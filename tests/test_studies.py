"""Studies end to end on tiny families: spec -> cells -> table -> plots; resume and shards."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from workbench.errors import ConfigError
from workbench.store import is_done
from workbench.studies import load_spec, run_study
from workbench.studies import runner as study_runner


def _spec(tmp_path, faces_dir, **fields):
    data = {"name": "t", "family": "tiny-sd", "selfies": str(faces_dir / "lisa_debruine"), "train": {"steps": 2},
            "packs": ["beach"], "prompts_per_pack": 1, "samplers": ["euler"], "steps": [2], "seeds": [0, 1], **fields}
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def test_sampler_steps_study(settings, faces_dir, tmp_path):
    spec = _spec(tmp_path, faces_dir, kind="sampler-steps", samplers=["euler", "dpmpp_2m"], steps=[2, 3])
    out = run_study(spec, tmp_path / "study", settings=settings, progress=False)
    table = pd.read_parquet(out / "study.parquet")
    assert sorted(table["cell"].unique()) == ["dpmpp_2m-2", "dpmpp_2m-3", "euler-2", "euler-3"]
    seconds = table[table.metric == "seconds_per_image"]
    assert len(seconds) == 4 * 2 and (seconds.value > 0).all()
    summary = pd.read_parquet(out / "summary.parquet")
    assert {"sampler", "steps", "metric", "mean", "ci_low", "ci_high"} <= set(summary.columns)
    assert (out / "report" / "study.png").stat().st_size > 1000 and is_done(out)
    assert "TINY MODEL" in (out / "report" / "report.md").read_text()


def test_upload_quality_study_resumes_cell_by_cell(settings, faces_dir, tmp_path, monkeypatch):
    spec = _spec(tmp_path, faces_dir, kind="upload-quality", degradations=[{"kind": "blur", "strength": 3}])
    real_run_cell, calls = study_runner.run_cell, []

    def dies_on_second_cell(spec, cell, *args, **kwargs):
        calls.append(cell.id)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_run_cell(spec, cell, *args, **kwargs)

    monkeypatch.setattr(study_runner, "run_cell", dies_on_second_cell)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, tmp_path / "uq", settings=settings, progress=False)
    clean = tmp_path / "uq" / "cells" / "clean" / "manifest.json"
    finished_at = clean.stat().st_mtime_ns
    monkeypatch.setattr(study_runner, "run_cell", real_run_cell)
    calls.clear()
    run_study(spec, tmp_path / "uq", settings=settings, progress=False)
    assert clean.stat().st_mtime_ns == finished_at  # the finished cell was not redone
    summary = pd.read_parquet(tmp_path / "uq" / "summary.parquet")
    gate = summary[summary.metric == "gate_matching_flag"].set_index("cell")["mean"]
    assert gate["blur-3"] == 1.0  # the gate caught every blurred photo
    deltas = pd.read_parquet(tmp_path / "uq" / "deltas.parquet")
    assert list(deltas["cell"]) == ["blur-3"]
    references = {p.name for p in (tmp_path / "uq" / "references").iterdir()}
    pool = {p.name for p in (tmp_path / "uq" / "pool").iterdir() if not p.name.startswith(".")}
    assert len(references) == 2 and not references & pool  # references are never trained on


def test_shards_split_the_cells(settings, faces_dir, tmp_path):
    spec = _spec(tmp_path, faces_dir, kind="sampler-steps", steps=[2, 3])
    out = tmp_path / "sharded"
    run_study(spec, out, settings=settings, shard=(0, 2), progress=False)
    assert is_done(out / "cells" / "euler-2") and not is_done(out / "cells" / "euler-3") and not is_done(out)
    run_study(spec, out, settings=settings, shard=(1, 2), progress=False)
    assert is_done(out) and (out / "study.parquet").is_file()


def test_bad_specs_name_the_problem(tmp_path, faces_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: sampler-steps\nselfies: s\nsteps: [two]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: steps.0"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="degradations"):
        study_runner.plan_cells(_spec(tmp_path, faces_dir, kind="upload-quality"))
    assert study_runner.parse_shard("1/3") == (1, 3)
    with pytest.raises(ConfigError):
        study_runner.parse_shard("3/3")
