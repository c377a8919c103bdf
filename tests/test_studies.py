"""Studies end to end on tiny families: spec -> cells (x identities x replicates) -> table -> summary,
paired comparisons, plots; resume, shards, and the protocol's guarantees."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import yaml

from workbench.errors import ConfigError
from workbench.store import is_done
from workbench.studies import load_spec, run_study
from workbench.studies import runner as study_runner
from workbench.studies.kinds import STUDY_KINDS
from workbench.studies.kinds.upload_quality import UploadQuality


def _spec(tmp_path, faces_dir, **fields):
    data = {"name": "t", "family": "tiny-sd", "selfies": str(faces_dir / "lisa_debruine"), "train": {"steps": 2},
            "packs": ["beach"], "prompts_per_pack": 1, "samplers": ["euler"], "steps": [2], "seeds": [0, 1],
            "recognizers": ["dlib"], **fields}
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def test_sampler_steps_study(settings, faces_dir, tmp_path):
    spec = _spec(tmp_path, faces_dir, kind="sampler-steps", samplers=["euler", "dpmpp_2m"], steps=[2, 3])
    out = run_study(spec, tmp_path / "study", settings=settings, progress=False)
    table = pd.read_parquet(out / "study.parquet")
    assert sorted(table["cell"].unique()) == ["dpmpp_2m-2", "dpmpp_2m-3", "euler-2", "euler-3"]
    assert set(table["identity"]) == {"lisa_debruine"} and set(table["replicate"]) == {0}
    seconds = table[table.metric == "seconds_per_image"]
    assert len(seconds) == 4 * 2 and (seconds.value > 0).all()
    # rendered one image at a time: each image has its own time, not its batch's average
    assert seconds.groupby("cell")["value"].nunique().min() == 2
    summary = pd.read_parquet(out / "summary.parquet")
    assert {"sampler", "steps", "metric", "mean", "ci_low", "ci_high", "ci_method", "ci_note"} <= set(summary.columns)
    assert (summary.loc[(summary.n > 0) & (summary.n < 5), "ci_note"] == "n < 5").all()
    assert (summary.loc[summary.n == 0, "ci_note"] == "no values").all()
    diffs = pd.read_parquet(out / "comparisons.parquet")
    assert {"steps", "sampler"} <= set(diffs["column"]) and {"p_value", "p_holm", "n_pairs"} <= set(diffs.columns)
    # cells of different step counts still pair image by image (the 'cell' id encodes sampler and steps)
    seconds_diff = diffs[(diffs.metric == "seconds_per_image") & (diffs.column == "steps")].iloc[0]
    assert seconds_diff["n_pairs"] == 2 * 2 and "cell" not in seconds_diff["pair_on"].split(", ")
    assert (diffs["p_holm"].dropna() >= diffs["p_value"].dropna()).all()
    for plot in ("metrics-vs-steps", "fidelity-vs-time"):
        assert (out / "report" / f"{plot}.png").stat().st_size > 1000
    report = (out / "report" / "report.md").read_text()
    assert "TINY MODEL" in report and "generation seeds and prompts only" in report and is_done(out)
    # the selfie set was checked once, in the driver, and the likeness trained from that report
    assert is_done(out / "likenesses" / "lisa_debruine" / "check")
    assert not (out / "likenesses" / "lisa_debruine" / "r0" / "check").exists()


@pytest.mark.slow
def test_replicates_over_two_identities_resample_both_levels(settings, faces_dir, tmp_path):
    spec = _spec(tmp_path, faces_dir, kind="sampler-steps", replicates=2, seeds=[0, 1, 2],
                 identities=[str(faces_dir / "lisa_debruine"), str(faces_dir / "aws_rek_subject1")])
    out = run_study(spec, tmp_path / "reps", settings=settings, progress=False)
    table = pd.read_parquet(out / "study.parquet")
    assert set(table["identity"]) == {"lisa_debruine", "aws_rek_subject1"} and set(table["replicate"]) == {0, 1}
    likenesses = sorted((out / "likenesses").glob("*/r*/likeness.json"))
    assert len(likenesses) == 4
    seeds = {p.parent.name: yaml.safe_load(p.read_text())["config"]["seed"] for p in likenesses}
    assert set(seeds.values()) == {0, 1}  # replicate r -> training seed + r
    summary = pd.read_parquet(out / "summary.parquet")
    sharp = summary[summary.metric == "sharpness"].iloc[0]
    # two identities are fewer than 5 units: no interval, and the note says at which level
    assert sharp["n"] == 2 * 2 * 3 and sharp["ci_note"] == "n < 5 identity values"
    assert "identities, training replicates and images" in (out / "report" / "report.md").read_text()


@pytest.mark.slow
def test_upload_quality_study_resumes_cell_by_cell(settings, faces_dir, tmp_path, monkeypatch):
    spec = _spec(tmp_path, faces_dir, kind="upload-quality", degradations=[{"kind": "blur", "strength": 3}],
                 train={})
    real_run_cell, calls = UploadQuality.run_cell, []

    def dies_on_second_cell(self, cell, *args, **kwargs):
        calls.append(cell.id)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_run_cell(self, cell, *args, **kwargs)

    monkeypatch.setattr(UploadQuality, "run_cell", dies_on_second_cell)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, tmp_path / "uq", settings=settings, progress=False)
    clean = tmp_path / "uq" / "cells" / "lisa_debruine" / "r0" / "clean" / "manifest.json"
    finished_at = clean.stat().st_mtime_ns
    monkeypatch.setattr(UploadQuality, "run_cell", real_run_cell)
    run_study(spec, tmp_path / "uq", settings=settings, progress=False)
    assert clean.stat().st_mtime_ns == finished_at  # the finished cell was not redone
    table = pd.read_parquet(tmp_path / "uq" / "study.parquet")
    summary = pd.read_parquet(tmp_path / "uq" / "summary.parquet")
    gate = summary[summary.metric == "gate_matching_flag"].set_index("cell")
    assert gate.loc["blur-3", "mean"] == 1.0  # the gate caught every blurred photo
    # a share over photos, and the pool is one shoot of four photos (the other shoot is the references):
    # too few for an interval, and the summary says so rather than showing a zero-width one
    assert gate.loc["blur-3", "ci_note"] == "n < 5"
    assert table.groupby("cell")["train_steps"].nunique().max() == 1
    assert table.loc[table.cell == "clean", "train_steps"].iloc[0] == table.loc[table.cell == "blur-3",
                                                                                 "train_steps"].iloc[0]
    deltas = pd.read_parquet(tmp_path / "uq" / "comparisons.parquet")
    assert list(deltas["cell"]) == ["blur-3"] and "identity" in deltas["pair_on"].iloc[0]
    split = json.loads((tmp_path / "uq" / "inputs" / "lisa_debruine" / "split.json").read_text())
    references, pool = set(split["references"]), set(split["pool"])
    assert not references & pool  # references are never trained on
    assert len(references) == 4 and split["references_share_shoot_with_pool"] is False  # a whole shoot of lisa's
    # the study keeps no byte copy of the person's photos once its cells are done
    originals = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (faces_dir / "lisa_debruine").iterdir()}
    assert not [p for p in (tmp_path / "uq").rglob("*")
                if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() in originals]
    # killed and resumed gives what one uninterrupted run gives: the same renders, byte for byte, and scores
    straight = run_study(spec, tmp_path / "uq-straight", settings=settings, progress=False)
    renders = sorted(p.relative_to(tmp_path / "uq") for p in (tmp_path / "uq" / "cells").rglob("*.png"))
    assert renders and renders == sorted(p.relative_to(straight) for p in (straight / "cells").rglob("*.png"))
    assert all((tmp_path / "uq" / r).read_bytes() == (straight / r).read_bytes() for r in renders)
    straight_table = pd.read_parquet(straight / "study.parquet")
    assert _comparable(table, tmp_path / "uq").equals(_comparable(straight_table, straight))


def _comparable(table: pd.DataFrame, root) -> pd.DataFrame:
    """A study table without timings, with its own folder named out of paths, rows in a fixed order."""
    table = table[~table.metric.str.contains("seconds")]
    text = table[sorted(c for c in table.columns if "seconds" not in c)].astype(str)
    text = text.apply(lambda column: column.str.replace(str(root), "<study>", regex=False))
    return text.sort_values(list(text.columns)).reset_index(drop=True)


def test_degraded_cells_train_as_many_steps_as_the_clean_one(tmp_path, faces_dir, settings):
    """With 'train: {}' the default steps follow the photo count; 'fewer' must not also change them."""
    spec = _spec(tmp_path, faces_dir, kind="upload-quality", family="sd15", train={},
                 degradations=[{"kind": "fewer", "strength": 3}])
    kind = UploadQuality(spec)
    _, pool = kind.split("lisa_debruine", tmp_path / "split")
    assert len(pool) == 4 and kind.steps_for(pool, settings) == 400  # 4 pool photos x 80 = 320, clamped to 400


@pytest.mark.slow
def test_shards_split_the_cells_by_likeness_and_never_wait_for_each_other(settings, faces_dir, tmp_path, capsys):
    """Shard 1 runs alone first: it trains the likeness its cells render from instead of waiting for
    shard 0 (which would never come); shard 0 then does the rest and the last one assembles."""
    spec = _spec(tmp_path, faces_dir, kind="sampler-steps", steps=[2, 3], replicates=2)
    out = tmp_path / "sharded"
    run_study(spec, out, settings=settings, shard=(1, 2), progress=False)
    cells = out / "cells" / "lisa_debruine"
    assert is_done(cells / "r1" / "euler-2") and is_done(cells / "r1" / "euler-3")
    assert not is_done(cells / "r0" / "euler-2") and not is_done(out / "likenesses" / "lisa_debruine" / "r0")
    assert "missing lisa_debruine/r0/euler-2, lisa_debruine/r0/euler-3" in capsys.readouterr().out
    run_study(spec, out, settings=settings, shard=(0, 2), progress=False)
    assert is_done(out) and len(pd.read_parquet(out / "study.parquet")["cell"].unique()) == 2


def test_bad_specs_name_the_problem(tmp_path, faces_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: sampler-steps\nselfies: s\nsteps: [two]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: steps.0"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="degradations"):
        study_runner.plan_cells(_spec(tmp_path, faces_dir, kind="upload-quality"))
    typo = tmp_path / "typo.yaml"  # a training option is checked when the spec loads, not when a cell trains
    typo.write_text("name: x\nkind: sampler-steps\nselfies: s\ntrain: {steps: 4, precison: bf16}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: train: .*precison: Extra inputs are not permitted"):
        load_spec(typo)
    missing = tmp_path / "missing.yaml"
    missing.write_text("name: x\nkind: sampler-steps\nselfies: no-such-folder\n")
    with pytest.raises(ConfigError, match="no-such-folder.*does not exist"):
        load_spec(missing).identity_sets()  # a relative path that is not there is an error, not a fallback
    with pytest.raises(ConfigError, match="executor 'rayy'"):
        run_study(_spec(tmp_path, faces_dir, kind="sampler-steps"), tmp_path / "never", executor="rayy")
    assert not (tmp_path / "never").exists()  # refused before anything is written
    assert study_runner.parse_shard("1/3") == (1, 3)
    with pytest.raises(ConfigError):
        study_runner.parse_shard("3/3")


def test_a_study_under_a_distributed_launcher_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="executor ray"):
        study_runner.parse_shard(None)
    assert study_runner.parse_shard("1/2") == (1, 2)  # explicit shards in separate processes are fine


def test_a_worker_checks_a_set_once_per_study_folder(faces_dir, tmp_path):
    """A Ray worker keeps its study kind between tasks, and with it the person's checked set; a second
    study into another folder (a notebook rerun in one Ray session) must still check and write its own."""
    from workbench.studies.executors import _kind_in_worker

    spec = _spec(tmp_path, faces_dir, kind="sampler-steps")
    cells = STUDY_KINDS[spec.kind](spec).plan()
    for out in (tmp_path / "first", tmp_path / "second"):
        kind = _kind_in_worker(spec.model_dump(), cells, str(out))
        assert (out / "likenesses" / "lisa_debruine" / "check" / "check.json").is_file()
        assert kind.prepared["lisa_debruine"]["check"].verdict
    assert _kind_in_worker(spec.model_dump(), cells, str(tmp_path / "second")) is kind  # same folder: kept
