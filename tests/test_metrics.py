"""Scoring: bootstrap against a known case; real photos scored as if generated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.images import list_images
from workbench.metrics import bootstrap_ci, paired_difference, summarize
from workbench.metrics.clip import ClipScorer
from workbench.metrics.scoring import reference_faces, score, score_images


def test_bootstrap_ci_known_case():
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 2.0, size=400)
    mean, low, high = bootstrap_ci(values, seed=0)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)  # normal-theory CI of the mean
    assert abs(mean - values.mean()) < 1e-12
    assert abs((high - low) / 2 - half) < 0.1 * half and low < 10.0 < high
    single = bootstrap_ci([3.0])  # one value: a mean, but no interval (never a zero-width CI)
    assert single[0] == 3.0 and np.isnan(single[1]) and np.isnan(single[2])
    assert all(np.isnan(bootstrap_ci([])))


def test_paired_difference():
    frame = pd.DataFrame({"metric": "m", "sampler": ["a"] * 5 + ["b"] * 5, "pack": "p", "prompt_id": "x",
                          "seed": list(range(5)) * 2, "value": [1, 2, 3, 4, 5, 2, 3, 4, 5, 6]})
    result = paired_difference(frame, "m", "sampler", "a", "b")
    assert result["n_pairs"] == 5 and result["mean_diff"] == 1.0 and result["ci_low"] == result["ci_high"] == 1.0


def test_real_photos_a_vs_a_beats_a_vs_b(analyzer, faces_dir, tmp_path):
    """Lisa's photos scored as 'outputs' against her other photos, and against London 004/005."""
    lisa = list_images(faces_dir / "lisa_debruine")
    items = [{"image_id": p.name, "path": str(p), "pack": "real", "prompt_id": "x", "sampler": "none", "steps": 0,
              "guidance": 0.0, "seed": i} for i, p in enumerate(lisa[:4])]
    clip = ClipScorer(None)
    own, _ = reference_faces(analyzer, lisa[4:])
    other, _ = reference_faces(analyzer, list_images(faces_dir / "london_004") + list_images(faces_dir / "london_005"))
    a_vs_a = score_images(items, faces_dir, own, [], analyzer, clip, progress=False)
    a_vs_b = score_images(items, faces_dir, other, [], analyzer, clip, progress=False)
    sa = summarize(a_vs_a, ["pack"]).set_index("metric")
    sb = summarize(a_vs_b, ["pack"]).set_index("metric")
    assert sa.loc["face_detected", "mean"] == 1.0
    assert sa.loc["test_facesim", "mean"] > 0.45 > sb.loc["test_facesim", "mean"]
    assert sa.loc["test_facesim_max", "mean"] >= sa.loc["test_facesim", "mean"]
    assert a_vs_a.loc[a_vs_a.metric == "sharpness", "region"].eq("face").all()  # which crop it ran on
    assert a_vs_a.loc[a_vs_a.metric == "clip_score", "reason"].iloc[0] == "CLIP metrics disabled"


def test_score_a_run_marks_missing_values_with_reasons(tiny_likeness, settings, tmp_path):
    from workbench.generate import generate

    run = generate(tiny_likeness, ["beach"], tmp_path / "run", steps=[2], seeds=[0, 1], prompts_per_pack=1,
                   settings=settings, progress=False)
    table = score(run.path, progress=False)
    assert (run.path / "scores.parquet").is_file()
    per_image = table[table.image_id.notna()]
    assert set(per_image.image_id) == set(run.table.image_id)
    missing = per_image[per_image.value.isna()]
    assert missing["reason"].notna().all()  # never a silent gap
    assert set(table.metric) >= {"face_detected", "test_facesim", "train_facesim", "nearest_train_facesim",
                                 "sharpness", "exposure", "clip_score", "identity_spread", "face_div_photomaker",
                                 "face_div_aligned",
                                 "copy_paste_gap", "id_match_rate"}
    assert "not on this machine" in table[table.metric == "clip_score"].reason.iloc[0]
    # the shared likeness has 9 photos: no test group, and every test row says why
    test = per_image[per_image.metric == "test_facesim"]
    assert test.value.isna().all() and (test.reason.str.contains("no face detected|no test group")).all()
    assert "FID/KID need a reference set you name" in table[table.metric == "fid_clip"].reason.iloc[0]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from workbench.models.tiny import build_tiny_clip

    return str(build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip"))


def test_clip_metrics_run_offline_on_a_tiny_clip(tiny_clip, faces_dir):
    """CLIP score, CLIP-IQA and FID/KID through torchmetrics with a CLIP loaded by from_pretrained."""
    from workbench.images import load_image
    from workbench.metrics.clip import ClipModel, distribution_metrics

    clip = ClipModel(tiny_clip)
    assert clip.unavailable is None
    scorer = ClipScorer(clip, iqa_model=clip)  # CLIP-IQA pluggable like CLIP score
    own_weights = ClipScorer(clip)  # CLIP-IQA's own weights (piq) are not on this machine: said, not faked
    assert own_weights.iqa_metric is None and "CLIP-IQA's own weights" in own_weights.iqa_unavailable
    lisa = [load_image(p) for p in list_images(faces_dir / "lisa_debruine")]
    london = [load_image(p) for n in ("004", "005", "006", "025") for p in list_images(faces_dir / f"london_{n}")]
    # CLIP score by its definition (Hessel et al. 2021, torchmetrics): 100 x max(cosine(image, text), 0). The
    # features are set to vectors 60 degrees apart (cosine 0.5), then 120 degrees apart (negative: clamped to 0)
    for angle, expected in ((60, 50.0), (120, 0.0)):
        theta = torch.tensor(angle * torch.pi / 180)
        width = clip.model.config.projection_dim
        image = torch.zeros(1, width).index_fill_(1, torch.tensor([0]), 3.0)
        text = torch.zeros(1, width)
        text[0, 0], text[0, 1] = 2 * torch.cos(theta), 2 * torch.sin(theta)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(clip.model, "get_image_features", lambda *a, i=image, **k: i)
            patch.setattr(clip.model, "get_text_features", lambda *a, t=text, **k: t)
            assert scorer.score(lisa[0], "photo of a woman") == pytest.approx(expected, abs=1e-4)
    iqa = scorer.iqa(lisa[0])
    assert set(iqa) == {"clip_iqa_quality", "clip_iqa_sharpness", "clip_iqa_noisiness"}
    assert all(0.0 <= v <= 1.0 for v in iqa.values())
    same = distribution_metrics(lisa[:4], lisa[4:], clip, min_images=2)
    other = distribution_metrics(london, lisa, clip, min_images=2)
    assert 0 <= same["fid_clip"][0] < other["fid_clip"][0]  # even random features see the shift
    # 8 a side: FID needs one more image than the tiny CLIP's 32 feature dimensions; KID needs 10
    result = distribution_metrics(lisa, lisa, clip)
    assert result["fid_clip"][0] is None and result["fid_clip"][1].startswith("FID needs at least 33 images a side")
    assert result["kid_clip"][0] is None and "KID needs at least 10" in result["kid_clip"][1]
    # 12 a side: KID (unbiased) is computed, over subsets of 6 that differ, so its std is not 0; FID is not
    twelve = distribution_metrics(london + lisa[:4], lisa + london[:4], clip)
    assert twelve["fid_clip"][0] is None and twelve["kid_clip"][0] is not None and twelve["kid_clip_std"][0] > 0


def test_letterbox_keeps_the_aspect():
    from PIL import Image

    from workbench.metrics.clip import letterbox

    tall = Image.new("RGB", (100, 200), (255, 0, 0))
    square = letterbox(tall, 224)
    pixels = np.asarray(square)
    assert square.size == (224, 224) and tuple(pixels[112, 112]) == (255, 0, 0)
    assert tuple(pixels[112, 5]) == (128, 128, 128)  # padded, not stretched


def test_score_with_every_metric_and_all_recognizers(tiny_likeness, tiny_clip, settings, tmp_path, faces_dir):
    from workbench.generate import generate

    run = generate(tiny_likeness, ["beach"], tmp_path / "run", steps=[2], seeds=[0, 1], prompts_per_pack=1,
                   settings=settings, progress=False)
    table = score(run.path, recognizers="all", clip_model=tiny_clip, clip_iqa_model=tiny_clip,
                  fid_reference=faces_dir / "lisa_debruine",
                  progress=False)
    assert set(table.metric) >= {"clip_score", "clip_iqa_quality", "fid_clip", "kid_clip"}
    fid = table[table.metric == "fid_clip"]
    assert len(fid) == 1 and fid.image_id.isna().all() and "FID needs at least 33 images a side" in fid.reason.iloc[0]
    assert table[table.metric == "clip_iqa_quality"].value.notna().all()
    assert table.recognizer.dropna().str.startswith("dlib").all()  # 'all' here = dlib (no ArcFace pack)


def test_every_registered_metric_has_a_producer_and_the_scorer_emits_it(tiny_likeness, settings, tmp_path):
    """The registry does the work: score() runs the producers the registered metrics name, so a registered
    metric nothing computes, or a computed metric nobody registered, fails here."""
    from workbench.generate import generate
    from workbench.metrics.producers import PRODUCERS
    from workbench.metrics.registry import METRICS, Metric, register

    emitted = {name for producer in PRODUCERS.values() for name in producer.emits}
    assert emitted == set(METRICS)
    with pytest.raises(ValueError, match="no producer"):
        register(Metric("orphan", "image", True, "nothing computes this", producer="identity"))
    run = generate(tiny_likeness, ["beach"], tmp_path / "run", steps=[2], seeds=[0, 1], prompts_per_pack=1,
                   settings=settings, progress=False)
    table = score(run.path, progress=False, clip_model=None)
    scored = {name for name, metric in METRICS.items() if PRODUCERS[metric.producer].level != "study"}
    assert set(table.metric) == scored - {"test_facesim_before_detailer"}  # no detailer ran
