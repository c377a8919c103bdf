"""The insightface backend's real loading and pre/post-processing, on a miniature pack made here
(the real packs cannot be downloaded on the test machine)."""

from __future__ import annotations

import numpy as np
import pytest
from insightface_pack import KEYPOINTS, make_pack
from PIL import Image

from workbench.errors import ModelNotAvailable
from workbench.faces import get_analyzer
from workbench.faces.insightface_backend import InsightFaceAnalyzer, _session, classify, discover


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return make_pack(tmp_path_factory.mktemp("insightface") / "models" / "buffalo_l")


def _spot_image(center=(114, 94), texture_seed=0, size=(320, 240)) -> Image.Image:
    """A dark textured image with one bright spot: the miniature detector's idea of a face (the
    texture stays below its threshold but is what the recognizer sees)."""
    rng = np.random.default_rng(texture_seed)
    blocks = rng.integers(0, 110, size=(size[1] // 8, size[0] // 8, 3)).astype(np.float32)
    pixels = blocks.repeat(8, axis=0).repeat(8, axis=1)  # coarse texture: survives the recognizer's pooling
    yy, xx = np.mgrid[:size[1], :size[0]]
    pixels += 255 * np.exp(-((xx - center[0]) ** 2 + (yy - center[1]) ** 2) / (2 * 5.0**2))[..., None]
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def test_pack_files_are_classified_by_signature(pack):
    roles = discover(pack, "buffalo_l")
    assert {k: v.name for k, v in roles.items()} == {
        "detector": "det_10g.onnx", "recognizer": "w600k_r50.onnx", "landmark_3d_68": "1k3d68.onnx"}
    assert classify(_session(pack / "w600k_r50.onnx")) == "recognizer"


def test_detection_is_decoded_to_image_coordinates(pack):
    """Spot at (114, 94) -> letterbox x2 -> stride-8 cell (28, 23), whose anchor is det (224, 184)
    = image (112, 92); boxes are 4 cells = 32 det px each side = 16 image px."""
    faces = InsightFaceAnalyzer(str(pack)).analyze(_spot_image())
    assert len(faces) == 1
    face = faces[0]
    np.testing.assert_allclose(face.bbox, (96, 76, 128, 108), atol=0.5)
    expected = np.array([(112 + 4 * dx, 92 + 4 * dy) for dx, dy in KEYPOINTS])
    np.testing.assert_allclose(face.keypoints, expected, atol=0.5)
    assert face.det_score > 0.5 and face.landmarks.shape == (68, 2)
    assert face.embedding.shape == (512,) and abs(np.linalg.norm(face.embedding) - 1) < 1e-5
    assert np.isfinite([face.yaw, face.pitch, face.roll]).all()
    assert face.recognizer.startswith("insightface-arcface") and "w600k_r50.onnx" in face.recognizer


def test_alignment_makes_the_embedding_follow_the_face_not_the_frame(pack):
    analyzer = InsightFaceAnalyzer(str(pack))
    still = analyzer.analyze(_spot_image())[0]
    moved = analyzer.analyze(Image.fromarray(np.roll(np.asarray(_spot_image()), (16, 32), axis=(0, 1))))[0]
    other = analyzer.analyze(_spot_image(texture_seed=1))[0]
    assert moved.bbox[0] == pytest.approx(still.bbox[0] + 32, abs=0.5)
    assert analyzer.similarity(still, moved) > 0.999
    assert analyzer.similarity(still, other) < 0.99
    assert analyzer.distance(still, moved) == pytest.approx(1 - analyzer.similarity(still, moved))


def test_batched_analysis_matches_one_by_one(pack):
    analyzer = InsightFaceAnalyzer(str(pack))
    images = [_spot_image(), Image.new("RGB", (200, 150)), _spot_image(center=(202, 150), texture_seed=2)]
    batched = analyzer.analyze_many(images)
    assert [len(f) for f in batched] == [1, 0, 1]
    for faces, image in zip(batched, images, strict=True):
        for a, b in zip(faces, analyzer.analyze(image), strict=True):
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)


def test_pack_without_landmark_model_poses_from_key_points(tmp_path):
    face = InsightFaceAnalyzer(str(make_pack(tmp_path / "p", landmarks=False))).analyze(_spot_image())[0]
    assert face.landmarks is None and np.isfinite(face.yaw)


def test_missing_pack_gives_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    with pytest.raises(ModelNotAvailable) as error:
        InsightFaceAnalyzer("antelopev2")
    message = str(error.value)
    assert str(tmp_path / "models" / "antelopev2") in message and "antelopev2.zip" in message
    assert "non-commercial" in message


def test_pack_without_recognizer_names_what_is_missing(tmp_path, pack):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "det_10g.onnx").write_bytes((pack / "det_10g.onnx").read_bytes())
    with pytest.raises(ModelNotAvailable, match="no recognizer model"):
        InsightFaceAnalyzer(str(partial))
    (partial / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelNotAvailable, match="broken.onnx"):
        InsightFaceAnalyzer(str(partial))


def test_registry_resolves_insightface_and_auto(pack, tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path / "empty"))
    assert get_analyzer("auto").name == "dlib-resnet"  # no pack on this machine: the embedded one
    assert get_analyzer(f"insightface:{pack}").name == "insightface-arcface"
    monkeypatch.setenv("INSIGHTFACE_HOME", str(pack.parent.parent))
    from workbench.faces import available_recognizers

    assert available_recognizers() == ["insightface", "dlib"]


def test_it_says_where_it_runs(pack):
    """The providers the recognizer got; with the CPU-only onnxruntime (this box, CI) the hint to swap it."""
    import onnxruntime

    runs_on = InsightFaceAnalyzer(str(pack)).runs_on
    assert "CPUExecutionProvider" in runs_on
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert "pip install onnxruntime-gpu" in runs_on
