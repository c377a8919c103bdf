"""dlib's networks on onnxruntime give dlib's own answers: the MMOD detector's boxes and scores, the
ResNet's descriptors."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.faces.dlib_backend import _model_dir
from workbench.faces.dlib_descriptor import DescriptorNet
from workbench.faces.dlib_dnn import DlibFormatError
from workbench.faces.mmod import MMODDetector
from workbench.images import load_image

MODEL = _model_dir() / "mmod_human_face_detector.dat"
RESNET = _model_dir() / "dlib_face_recognition_resnet_model_v1.dat"


def _rgb(path, max_side=None, crop_left=0):
    image = load_image(path).convert("RGB")
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    return np.ascontiguousarray(np.asarray(image)[:, crop_left:])


@pytest.fixture(scope="module")
def detectors():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(MODEL)), MMODDetector(MODEL)


@pytest.mark.slow
def test_same_detections_as_dlib(detectors, faces_dir):
    """Three faces on deeper pyramid levels, a profile, a face cut by the left edge (its box starts at
    -4.5, which dlib rounds away from zero), and a photo with no face."""
    native, ours = detectors
    photos = [_rgb(faces_dir / "_multi" / "01.png", 640), _rgb(faces_dir / "aws_rek_subject1" / "07.jpg"),
              _rgb(faces_dir / "_occluded" / "03.png", crop_left=188), _rgb(faces_dir / "_noface" / "05.jpg", 320)]
    counts = []
    for rgb in photos:
        expected = [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
                    for d in native(rgb, 0)]
        found = ours(rgb)
        assert [box for box, _ in found] == [box for box, _ in expected]
        assert np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-4)
        counts.append(len(found))
    assert counts == [3, 1, 1, 0]
    assert ours(photos[2])[0][0][0] == -5
    assert ours(photos[0], threshold=1.09) == [d for d in ours(photos[0]) if d[1] > 1.09]


def test_tiny_and_odd_images_give_no_detections(detectors):
    _, ours = detectors
    assert ours(np.zeros((16, 16, 3), np.uint8)) == []
    assert ours(np.full((3, 400, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError, match="H x W x 3"):
        ours(np.zeros((40, 40), np.uint8))


def test_other_files_are_refused_with_the_reason(tmp_path):
    shape_model = _model_dir() / "shape_predictor_68_face_landmarks.dat"
    with pytest.raises(DlibFormatError, match="loss_mmod_"):
        MMODDetector(shape_model)
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(MODEL.read_bytes()[:300_000])
    with pytest.raises(DlibFormatError):
        MMODDetector(truncated)


def test_same_descriptors_as_dlib(faces_dir):
    """On faces of several sizes and poses (a profile, a three-quarter view, a 12 MP selfie): dlib's
    compute_face_descriptor and its chip through the onnxruntime ResNet agree to float rounding."""
    import dlib

    from workbench.faces.dlib_backend import DlibAnalyzer

    backend, net = DlibAnalyzer(), DescriptorNet(RESNET)
    chips, expected = [], []
    for name in ("aws_rek_subject1/02.jpg", "aws_rek_subject1/06.jpg", "aws_rek_dani/01.jpg", "_multi/01.png"):
        pixels = _rgb(faces_dir / name)
        for face in backend.analyze(load_image(faces_dir / name)):
            shape = backend._shape(pixels, dlib.rectangle(*(round(v) for v in face.bbox)))
            expected.append(np.array(backend._recognizer.compute_face_descriptor(pixels, shape)))
            chips.append(dlib.get_face_chip(pixels, shape, size=150, padding=0.25))
    found = net(np.stack(chips))
    assert found.shape == (6, 128) and np.abs(found - np.array(expected)).max() < 1e-5
    with pytest.raises(DlibFormatError):
        DescriptorNet(MODEL)


def test_the_analyzer_uses_them(analyzer, faces_dir):
    backend = analyzer.backend
    face = backend.analyze(load_image(faces_dir / "lisa_debruine" / "01.jpg"))[0]
    assert isinstance(backend._cnn_detector(), MMODDetector) and isinstance(backend._net, DescriptorNet)
    assert face.descriptor.shape == (128,) and np.isclose(np.linalg.norm(face.embedding), 1.0)


def test_dlib_networks_are_the_fallback(monkeypatch, analyzer, faces_dir):
    """A model file these readers do not know: a warning, then dlib's own networks, same faces."""
    from workbench.faces import dlib_descriptor, mmod
    from workbench.faces.dlib_backend import DlibAnalyzer

    def refuse(self, *args, **kwargs):
        raise DlibFormatError("a layer this reader does not know")

    photo = load_image(faces_dir / "aws_rek_subject1" / "07.jpg")  # a profile: only the CNN finds it
    expected = analyzer.backend.analyze(photo)[0]
    monkeypatch.setattr(mmod.MMODDetector, "__init__", refuse)
    monkeypatch.setattr(dlib_descriptor.DescriptorNet, "__init__", refuse)
    backend = DlibAnalyzer()
    with pytest.warns(UserWarning, match="slower"):
        face = backend.analyze(photo)[0]
    assert face.detector == "cnn" and face.bbox == expected.bbox
    assert np.abs(face.descriptor - expected.descriptor).max() < 1e-5
