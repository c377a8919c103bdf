"""Metrics as the literature defines them, each on inputs whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.images import list_images, load_image
from workbench.metrics.identity import image_identity, real_copy_paste_gaps
from workbench.metrics.lpips import LpipsModel, RandomAlexLike, aligned_crop, face_div_lpips
from workbench.metrics.registry import METRICS, get_metric
from workbench.metrics.scoring import reference_faces


@pytest.fixture(scope="module")
def lisa(analyzer, faces_dir):
    files = list_images(faces_dir / "lisa_debruine")
    faces, _ = reference_faces(analyzer, files)
    assert len(faces) == len(files)
    return files, faces


def test_lpips_is_zero_for_identical_faces_and_symmetric(analyzer, lisa):
    files, faces = lisa
    model = LpipsModel(RandomAlexLike(seed=0))
    crops = [aligned_crop(load_image(p), f) for p, f in zip(files[:3], faces[:3], strict=True)]
    assert model.distance(crops[0], crops[0]) == 0.0
    assert model.distance(crops[0], crops[1]) == pytest.approx(model.distance(crops[1], crops[0]))
    assert model.distance(crops[0], crops[1]) > 0
    assert face_div_lpips(model, [crops[0]] * 3) == 0.0  # the same face three times: no variety
    assert face_div_lpips(model, crops) > 0 and face_div_lpips(model, crops[:1]) is None


def test_aligned_crops_ignore_where_the_face_sits_in_the_frame(analyzer, lisa):
    """A shifted copy of a photo gives the same aligned crop, so Face-Div measures the face, not framing."""
    from PIL import Image

    files, _ = lisa
    image = load_image(files[0]).resize((600, 800))
    shifted = Image.new("RGB", (700, 900))
    shifted.paste(image, (100, 100))
    a, b = (aligned_crop(im, analyzer.analyze(im)[0]) for im in (image, shifted))
    model = LpipsModel(RandomAlexLike(seed=0))
    assert model.distance(a, b) < 0.1 * model.distance(a, aligned_crop(load_image(files[5]),
                                                                          analyzer.analyze(load_image(files[5]))[0]))


def test_lpips_without_its_backbone_says_why():
    assert "torchvision" in LpipsModel("alex").unavailable or LpipsModel("alex").unavailable is None


def test_a_never_trained_real_photo_has_the_real_photos_copy_paste_gap(analyzer, lisa):
    files, faces = lisa
    training, test, extra = faces[:4], faces[4:7], faces[7]
    generated = image_identity(analyzer, [extra], test, training)
    real = real_copy_paste_gaps(analyzer, [*test, extra], training)
    assert generated["copy_paste_gap"] == pytest.approx(real[-1])
    # and a 'likeness' that returns a training photo copies: its gap is far above every real one
    copied = image_identity(analyzer, [training[0]], test, training)
    assert copied["copy_paste_gap"] > max(real) + 0.2


def test_match_threshold_reproduces_on_the_bundled_identities(analyzer, faces_dir):
    from workbench.faces.calibration import SHIPPED, calibrate, match_threshold

    shipped = json.loads((SHIPPED / "dlib-resnet.json").read_text())
    again = calibrate(faces_dir, analyzer, shipped["identity_set"])
    assert again["model_hash"] == shipped["model_hash"] == analyzer.model_hash
    assert again["thresholds"]["0.001"]["threshold"] == shipped["thresholds"]["0.001"]["threshold"]
    assert again["identity_names"] == shipped["identity_names"] and not again["thresholds"]["0.001"]["resolvable"]
    # 450 impostor pairs cannot resolve FMR 1e-3 (10 000 needed): the shipped calibration is not used, dlib's
    # published operating point is, and the note says both
    threshold, note = match_threshold(analyzer, 1e-3)
    assert threshold == pytest.approx(0.30) and "published" in note and "10000 needed" in note


def test_a_calibration_that_resolves_is_used_only_for_people_it_did_not_include(analyzer, tmp_path):
    from workbench.faces.calibration import find, match_threshold, save, threshold_at

    impostor, genuine = np.linspace(-1.0, 0.4, 20_000), np.array([0.6, 0.7])
    record = {"recognizer": analyzer.name, "version": analyzer.version, "model_hash": analyzer.model_hash,
              "identity_set": "mine", "identities": 40, "identity_names": ["ana", "bo"], "faces": 80,
              "genuine_pairs": 2, "impostor_pairs": impostor.size, "roc_auc": 1.0,
              "thresholds": {"0.001": threshold_at(impostor, genuine, 1e-3)}}
    save(record, tmp_path)
    assert find(analyzer, tmp_path)["identity_set"] == "mine"
    used, note = match_threshold(analyzer, 1e-3, tmp_path, evaluated={"carla"})
    assert used == pytest.approx(record["thresholds"]["0.001"]["threshold"]) and "disjoint" in note
    fallback, why = match_threshold(analyzer, 1e-3, tmp_path, evaluated={"bo"})
    assert fallback == pytest.approx(0.30) and "includes the people evaluated (bo)" in why


def test_threshold_at_a_false_match_rate_on_known_scores():
    from workbench.faces.calibration import threshold_at

    impostor = np.arange(1000) / 1000.0  # 0.000 ... 0.999
    genuine = np.array([0.5, 0.9991, 1.2])
    entry = threshold_at(impostor, genuine, 1e-2)  # 10 impostors may match: 0.990-0.999
    assert (impostor >= entry["threshold"]).sum() == 10 and entry["resolvable"]
    assert entry["threshold"] == pytest.approx(0.989, abs=1e-6) and entry["fnmr"] == pytest.approx(1 / 3)
    strict = threshold_at(impostor, genuine, 1e-4)
    assert (impostor >= strict["threshold"]).sum() == 0 and not strict["resolvable"]


def test_id_match_rate_uses_the_threshold(analyzer, lisa):
    _, faces = lisa
    high = image_identity(analyzer, [faces[0]], faces[1:3], faces[3:], threshold=0.0)
    low = image_identity(analyzer, [faces[0]], faces[1:3], faces[3:], threshold=0.99)
    none = image_identity(analyzer, [faces[0]], faces[1:3], faces[3:], threshold=None)
    assert (high["id_match_rate"], low["id_match_rate"], none["id_match_rate"]) == (1.0, 0.0, None)
    # pair by pair, as the threshold was calibrated: one test photo above it, one below -> half verified
    sims = sorted(analyzer.similarity(faces[0], ref) for ref in faces[1:3])
    between = image_identity(analyzer, [faces[0]], faces[1:3], faces[3:], threshold=(sims[0] + sims[1]) / 2)
    assert between["id_match_rate"] == 0.5


def test_dlib_similarity_is_the_documented_map_unclipped(analyzer, lisa):
    from workbench.faces.dlib_backend import distance_to_similarity

    assert [round(float(distance_to_similarity(d)), 6) for d in (0.0, 0.6, 1.2)] == [1.0, 0.3, -0.4]
    _, faces = lisa
    a, b = faces[0], faces[5]
    assert analyzer.similarity(a, b) == pytest.approx(1 - 0.7 / 0.6 * analyzer.distance(a, b))


def test_every_metric_declares_direction_definition_and_level():
    for metric in METRICS.values():
        assert metric.definition and metric.level in {"image", "group", "run", "cell"}
        assert metric.higher_is_better in (True, False, None)
    assert get_metric("face_detected").rate and not get_metric("id_match_rate").rate  # a share per image
    with pytest.raises(Exception, match="Did you mean 'test_facesim'"):
        get_metric("test_facesmi")
