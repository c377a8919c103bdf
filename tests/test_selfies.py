"""The upload gate on real photos and on copies the tests degrade themselves."""

from __future__ import annotations

import copy
import shutil

import numpy as np
from PIL import Image, ImageFilter

from workbench.selfies import DEFAULT_THRESHOLDS, FLAGS, check_selfies


def _by_file(report):
    return {p.file: p for p in report.photos}


def test_subject1_set(analyzer, faces_dir, tmp_path):
    """The set's known photos: sunglasses, cap, two profiles, looking up; frontal ones pass."""
    report = check_selfies(faces_dir / "aws_rek_subject1", analyzer=analyzer, out=tmp_path, progress=False)
    photos = _by_file(report)
    assert photos["01.jpg"].status == "pass" and photos["05.jpg"].status == "pass"
    assert photos["03.jpg"].status == "pass"
    assert "sunglasses" in photos["08.jpg"].flags and "hat" in photos["09.jpg"].flags
    for name in ("04.jpg", "06.jpg", "07.jpg"):
        assert "extreme_pose" in photos[name].flags, name
    flagged = {name: p.flags for name, p in photos.items()}
    assert not any("sunglasses" in f for n, f in flagged.items() if n != "08.jpg"), flagged
    assert not any("hat" in f for n, f in flagged.items() if n != "09.jpg"), flagged
    assert report.verdict in {"usable_with_warnings", "not_ready"}
    assert report.set["count"] == 9
    saved = (tmp_path / "check.json").read_text()
    assert '"verdict"' in saved and (tmp_path / "photos.parquet").is_file() and (tmp_path / "manifest.json").is_file()
    assert set(f for p in report.photos for f in p.flags) <= set(FLAGS)
    assert report.set["variety"]["smiling"] + report.set["variety"]["neutral"] >= 5


def test_small_face_and_steep_pitch(analyzer, faces_dir):
    other = _by_file(check_selfies(faces_dir / "_other", analyzer=analyzer, progress=False))
    assert "face_too_small" in other["02.jpg"].flags and other["02.jpg"].status == "fail"
    assert "extreme_pose" in other["01.jpg"].flags


def test_expression_rules_on_landmark_geometry(analyzer, faces_dir):
    """No fixture photo has an extreme expression, so the rule is checked on moved landmarks."""
    from workbench.images import load_image
    from workbench.selfies.attributes import measure

    image = load_image(faces_dir / "lisa_debruine" / "04.jpg")
    face = analyzer.analyze(image)[0]
    relaxed = measure(image, face)
    iod = np.linalg.norm(face.landmarks[36:42].mean(0) - face.landmarks[42:48].mean(0))
    shouting = copy.deepcopy(face)
    shouting.landmarks[65:68, 1] += 0.6 * iod  # lower inner lip drops: mouth wide open
    eyes_shut = copy.deepcopy(face)
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        eyes_shut.landmarks[upper, 1] = eyes_shut.landmarks[lower, 1] = face.landmarks[[upper, lower], 1].mean()
    assert relaxed["mouth_open"] < DEFAULT_THRESHOLDS.mouth_open_above < measure(image, shouting)["mouth_open"]
    assert measure(image, eyes_shut)["eye_aspect"] < DEFAULT_THRESHOLDS.eyes_closed_below < relaxed["eye_aspect"]


def test_dark_multi_and_noface(analyzer, faces_dir, tmp_path):
    dani = _by_file(check_selfies(faces_dir / "aws_rek_dani", analyzer=analyzer, progress=False))
    assert all("too_dark" in dani[f"0{i}.jpg"].flags for i in range(1, 5))
    multi = check_selfies(faces_dir / "_multi", analyzer=analyzer, progress=False).photos[0]
    assert "multiple_faces" in multi.flags
    noface = check_selfies(faces_dir / "_noface", analyzer=analyzer, progress=False)
    assert all("no_face" in p.flags for p in noface.photos)


def test_intruder_duplicate_blur_and_broken_file(analyzer, faces_dir, tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(faces_dir / "lisa_debruine", folder)
    shutil.copy(faces_dir / "london_004" / "01.jpg", folder / "intruder.jpg")
    Image.open(folder / "05.jpg").resize((1000, 1333)).save(folder / "05-copy.jpg", quality=80)
    Image.open(folder / "06.jpg").filter(ImageFilter.GaussianBlur(6)).save(folder / "06-blurred.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    report = check_selfies(folder, analyzer=analyzer, progress=False)
    photos = _by_file(report)
    assert "different_person" in photos["intruder.jpg"].flags
    assert ["05-copy.jpg", "05.jpg"] in [sorted(g) for g in report.set["duplicates"]]
    assert ("duplicate" in photos["05-copy.jpg"].flags) != ("duplicate" in photos["05.jpg"].flags)  # one kept
    assert "blurry" in photos["06-blurred.jpg"].flags
    assert photos["broken.jpg"].flags == ["unreadable"] and "broken.jpg" not in report.set["training_files"]
    assert photos["01.jpg"].status == "pass"  # one broken file never stops the rest
    assert report.set["intruders"][0]["file"] == "intruder.jpg"


def test_profiles_are_not_called_someone_else(analyzer, faces_dir):
    photos = _by_file(check_selfies(faces_dir / "aws_rek_subject1", analyzer=analyzer, progress=False))
    for name in ("06.jpg", "07.jpg"):
        assert "different_person" not in photos[name].flags and "extreme_pose" in photos[name].flags


def test_large_photos_are_checked_downscaled_but_reported_in_original_pixels(analyzer, faces_dir, tmp_path):
    """A 12 MP-class photo is analysed at 2000 px; face size and the crop box are in original pixels."""
    from PIL import Image

    from workbench.images import load_image
    from workbench.selfies.photo import check_photo
    from workbench.selfies.thresholds import DEFAULT_THRESHOLDS

    image = load_image(faces_dir / "lisa_debruine" / "05.jpg")  # 1152x1536
    big = image.resize((image.width * 2, image.height * 2), Image.BICUBIC)
    big.save(tmp_path / "big.jpg", quality=92)
    small = check_photo(faces_dir / "lisa_debruine" / "05.jpg", analyzer, DEFAULT_THRESHOLDS)
    large = check_photo(tmp_path / "big.jpg", analyzer, DEFAULT_THRESHOLDS)
    assert large.size == (2304, 3072) and large.scale < 1
    # HOG boxes are coarse (pyramid levels), so sizes agree loosely; box centres agree tightly.
    # Analysis-pixel coordinates would give ratios near 2 x 0.65 = 1.3.
    assert 1.6 < large.scores["face_px"] / small.scores["face_px"] < 2.4
    centre = lambda box: np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])  # noqa: E731
    ratio = centre(large.subject_bbox) / centre(small.subject_bbox)
    assert np.allclose(ratio, 2, atol=0.1), ratio


def test_a_set_checked_from_faces_found_photo_by_photo_runs_no_detector(analyzer, faces_dir):
    """A Ray study finds a set's faces one photo per task (``find_faces``, on any worker) and checks the
    set from them elsewhere: that check must run no detector and say what a check finding them itself says."""
    import json
    import pickle

    from workbench.faces import CachedAnalyzer
    from workbench.images import folder_entries
    from workbench.selfies.check import find_faces

    class NoDetector:  # the recognizer's models for comparing faces, but any detection fails the test
        def __getattr__(self, name):
            return getattr(analyzer.backend, name)

        def analyze(self, image):
            raise AssertionError("the check ran a detector")

        analyze_many = analyze

    folder = faces_dir / "aws_rek_subject1"  # profiles: the fallback detectors find them
    found = [pickle.loads(pickle.dumps(find_faces(path, analyzer))) for path in folder_entries(folder)]
    worker = CachedAnalyzer(NoDetector())
    for faces in found:
        worker.learn(faces)
    adopted, direct = check_selfies(folder, worker, progress=False), check_selfies(folder, analyzer, progress=False)
    assert json.dumps(adopted.as_dict(), default=str) == json.dumps(direct.as_dict(), default=str)
    assert adopted.set["usable"] >= 3
