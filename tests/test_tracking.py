"""Training and studies log to the trackers researchers use; read back with the trackers' own readers."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("tensorboard")
mlflow = pytest.importorskip("mlflow")


def test_training_logs_loss_curve_and_probes_to_tensorboard_and_mlflow(settings, analyzer, faces_dir, tmp_path,
                                                                      monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from workbench.likeness import train_likeness

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # an MLflow file: store
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    likeness = train_likeness(faces_dir / "aws_rek_subject1", tmp_path / "tracked", family="tiny-sd",
                              settings=settings, analyzer=analyzer, progress=False, steps=4, checkpoint_every=2,
                              log_with=["tensorboard", "mlflow"])
    ids = likeness.card["trackers"]
    assert set(ids) == {"tensorboard", "mlflow"}
    events = EventAccumulator(ids["tensorboard"], size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("validation/loss")] == [2, 4]
    assert "probes" in events.Tags()["images"]
    runs = mlflow.search_runs(experiment_names=["likeness-tracked"])
    assert list(runs["run_id"]) == [ids["mlflow"]]
    last = events.Scalars("train/loss")[-1].value  # both trackers hold the same last loss
    assert runs.iloc[0]["metrics.train/loss"] == pytest.approx(last, rel=1e-6)
    assert runs.iloc[0]["params.rank"] == "16"


def test_a_study_logs_one_run_per_cell(settings, faces_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    from workbench.studies import load_spec, run_study

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # an MLflow file: store
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    path = tmp_path / "tracked-study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tracked-study", "kind": "sampler-steps", "family": "tiny-sd",
        "selfies": str(faces_dir / "lisa_debruine"), "train": {"steps": 2}, "packs": ["beach"], "prompts_per_pack": 1,
        "samplers": ["euler", "dpmpp_2m"], "steps": [2], "seeds": [0, 1], "recognizers": ["dlib"],
        "log_with": ["mlflow"]}))
    run_study(load_spec(path), tmp_path / "study", settings=replace(settings, home=tmp_path / "h"), progress=False)
    runs = mlflow.search_runs(experiment_names=["tracked-study"])
    assert sorted(runs["tags.mlflow.runName"]) == ["lisa_debruine-r0-dpmpp_2m-2", "lisa_debruine-r0-euler-2"]
    # every mean beside its n and interval
    assert {"params.sampler", "metrics.sharpness/mean", "metrics.sharpness/n", "metrics.sharpness/ci_low",
            "metrics.sharpness/ci_high"} <= set(runs.columns)
