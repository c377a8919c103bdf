"""Identity arms and the face detailer, on tiny families and real face photos."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from workbench.generate import generate
from workbench.likeness import train_likeness


@pytest.fixture(scope="module")
def lisa_likeness(settings, analyzer, faces_dir, tmp_path_factory):
    return train_likeness(faces_dir / "lisa_debruine", tmp_path_factory.mktemp("arms") / "lisa", family="tiny-sd",
                          settings=settings, analyzer=analyzer, progress=False, steps=2, test=2)


def _pixels(run):
    return [np.asarray(Image.open(run.path / p), dtype=np.int16) for p in run.table["path"]]


def test_ip_adapter_loads_through_diffusers_and_changes_only_what_it_should(lisa_likeness, settings, tmp_path):
    grid = dict(steps=[2], seeds=[0, 1], prompts_per_pack=1, settings=settings, progress=False)
    base = generate(lisa_likeness, ["beach"], tmp_path / "base", arm="base", **grid)
    off = generate(lisa_likeness, ["beach"], tmp_path / "off", arm="ip-adapter-face", ip_scale=0.0, **grid)
    on = generate(lisa_likeness, ["beach"], tmp_path / "on", arm="ip-adapter-face", ip_scale=1.0, **grid)
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(base), _pixels(off), strict=True))  # scale 0 = no adapter
    assert any(np.abs(a - b).max() > 0 for a, b in zip(_pixels(base), _pixels(on), strict=True))
    assert set(on.table["arm"]) == {"ip-adapter-face"} and (on.table["ip_scale"] == 1.0).all()
    assert "ohwx" not in on.table["prompt"].iloc[0]  # no LoRA in this arm: the trigger would mean nothing


def test_ip_adapter_references_are_training_photos_never_test_photos(lisa_likeness):
    from workbench.arms import reference_faces

    crops = reference_faces(lisa_likeness, count=10)
    assert len(crops) == len(lisa_likeness.split("train"))  # every train photo has a face; no test photo joins


def test_ip_adapter_arm_on_sdxl(settings, analyzer, faces_dir, tmp_path):
    likeness = train_likeness(faces_dir / "lisa_debruine", tmp_path / "xl", family="tiny-sdxl", settings=settings,
                              analyzer=analyzer, progress=False, steps=1)
    run = generate(likeness, ["beach"], tmp_path / "xl-run", arm="likeness+ip-adapter-face", steps=[2], seeds=[0],
                   prompts_per_pack=1, settings=settings, progress=False)
    assert len(run.table) == 1 and run.table["arm"].iloc[0] == "likeness+ip-adapter-face"


def test_detailer_rerenders_a_small_face_and_keeps_every_other_pixel(settings, analyzer, faces_dir):
    from workbench.generate.detailer import detail_face, settings_of
    from workbench.models import load_pipeline

    canvas = Image.new("RGB", (512, 512), (120, 130, 140))
    portrait = Image.open(faces_dir / "london_004" / "01.jpg").convert("RGB").resize((170, 170))
    canvas.paste(portrait, (300, 40))
    faces = analyzer.analyze(canvas)
    assert faces, "the test face must be found"
    pipe, _ = load_pipeline("tiny-sd", settings=settings)
    result = detail_face(pipe, canvas, faces, "detailed face", steps=2, guidance=5.0, seed=0, native=64,
                         options=settings_of({}))
    assert result.applied and "re-rendered" in result.reason
    before, after = np.asarray(canvas), np.asarray(result.image)
    outside = np.asarray(result.mask) == 0
    assert np.array_equal(before[outside], after[outside])  # not one pixel outside the mask changed
    assert np.abs(before[~outside].astype(int) - after[~outside]).max() > 0
    x0, y0, x1, y1 = result.box
    assert not np.asarray(result.mask)[:y0].any() and not np.asarray(result.mask)[:, :x0].any()
    big = detail_face(pipe, portrait.resize((512, 512)), analyzer.analyze(portrait.resize((512, 512))), "face",
                      steps=2, guidance=5.0, seed=0, native=64, options=settings_of({"max_face_share": 0.1}))
    assert not big.applied and "covers" in big.reason  # a large face is left alone


def test_detailer_in_a_run_records_before_and_after(lisa_likeness, settings, tmp_path, monkeypatch):
    """On tiny models the images are noise, so the detector is given a face: the run records the pass,
    keeps the image from before it, and scoring reports FaceSim before and after on the same image."""
    from workbench.faces import Face
    from workbench.metrics import score

    class OneFace:
        def analyze(self, image):
            w, h = image.size
            return [Face(bbox=(w * 0.4, h * 0.4, w * 0.55, h * 0.55), keypoints=np.zeros((5, 2)), det_score=1.0,
                         embedding=np.ones(128) / np.sqrt(128), recognizer="fake")]

    monkeypatch.setattr("workbench.faces.get_analyzer", lambda *a, **k: OneFace())
    run = generate(lisa_likeness, ["beach"], tmp_path / "detailed", steps=[2], seeds=[0], prompts_per_pack=1,
                   settings=settings, progress=False, detailer={"max_face_share": 0.5})
    row = run.table.iloc[0]
    assert "re-rendered" in row["detailer"] and (run.path / row["before_path"]).is_file()
    monkeypatch.undo()
    table = score(run.path, clip_model=None, progress=False, settings=settings)
    assert "test_facesim_before_detailer" in set(table.metric)


@pytest.mark.slow
def test_arms_study_reports_one_row_per_arm_with_paired_differences(settings, faces_dir, tmp_path):
    from dataclasses import replace

    from workbench import resources
    from workbench.studies import load_spec, run_study

    spec = load_spec(resources.spec_path("arms-tiny", "study"))
    out = run_study(spec, tmp_path / "arms", settings=replace(settings, home=tmp_path / "h"), progress=False)
    per_arm = pd.read_parquet(out / "section-1.parquet")
    assert list(per_arm["cell"]) == spec.arms
    assert {"test_facesim", "id_match_rate", "copy_paste_gap", "clip_score", "seconds_per_image",
            "peak_gpu_memory_gb"} <= set(per_arm.columns)
    diffs = pd.read_parquet(out / "comparisons.parquet")
    assert set(diffs["b"]) == set(spec.arms) - {"likeness"} and {"ci_low", "ci_high", "p_holm"} <= set(diffs.columns)
    report = (out / "report" / "report.md").read_text()
    assert "arms" in report and "Paired differences from the likeness arm" in report


def test_faceid_arm_takes_the_training_photos_face_embedding(lisa_likeness, settings, tmp_path):
    from workbench.arms import identity_embedding
    from workbench.models import get_family

    embeds = identity_embedding(lisa_likeness, get_family("tiny-sd"))
    assert tuple(embeds.shape) == (2, 1, 128) and float(embeds[0].abs().sum()) == 0.0  # [no-face, the person]
    grid = dict(steps=[2], seeds=[0, 1], prompts_per_pack=1, settings=settings, progress=False)
    base = generate(lisa_likeness, ["beach"], tmp_path / "base", arm="base", **grid)
    faceid = generate(lisa_likeness, ["beach"], tmp_path / "faceid", arm="ip-adapter-faceid", ip_scale=1.0, **grid)
    both = generate(lisa_likeness, ["beach"], tmp_path / "both", arm="likeness+ip-adapter-faceid", **grid)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(_pixels(base), _pixels(faceid), strict=True))
    assert set(both.table["arm"]) == {"likeness+ip-adapter-faceid"} and "ohwx" in both.table["prompt"].iloc[0]
    manifest = __import__("json").loads((faceid.path / "manifest.json").read_text())
    assert "non-commercial" in manifest["config"]["licence_notes"]
