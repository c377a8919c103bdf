"""The embedded recognizer on real photos: detection counts, pose sign, and identity separation."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.faces import identity_score
from workbench.images import list_images, load_image


def _faces(analyzer, path):
    return analyzer.analyze(load_image(path))


@pytest.mark.slow
def test_detection_counts_on_every_bundled_photo(analyzer, faces_dir):
    """Every single-face photo gives exactly one face, including the dark selfies (Haar fallback),
    the 12-px face (Haar, confirmed) and the profiles / looking-up photo (CNN fallback, pose unknown);
    no-face photos give none; the group photo several."""
    import csv

    expected = {"single-face": 1, "profile": 1, "no-face": 0}
    for row in csv.DictReader((faces_dir / "MANIFEST.csv").read_text().splitlines()):
        faces = _faces(analyzer, faces_dir / row["file"])
        if row["category"] == "multi-face":
            assert len(faces) >= 3, row["file"]
        elif row["category"] in expected:
            assert len(faces) == expected[row["category"]], (row["file"], len(faces))
    subject = faces_dir / "aws_rek_subject1"
    profiles = {name: _faces(analyzer, subject / name)[0] for name in ("04.jpg", "06.jpg", "07.jpg")}
    assert all(face.detector == "cnn" for face in profiles.values())
    # 06 faces the image's right, 07 its left: |yaw| > 60 with opposite signs; looking up (04) has no side
    assert profiles["06.jpg"].yaw > 60 and profiles["07.jpg"].yaw < -60 and np.isnan(profiles["04.jpg"].yaw)
    tiny = _faces(analyzer, faces_dir / "_other" / "02.jpg")[0]
    assert tiny.detector == "haar" and tiny.size < 20


def test_face_record_is_complete(analyzer, faces_dir):
    face = _faces(analyzer, faces_dir / "aws_rek_subject1" / "01.jpg")[0]
    assert face.keypoints.shape == (5, 2) and face.landmarks.shape == (68, 2)
    assert abs(np.linalg.norm(face.embedding) - 1.0) < 1e-5 and face.embedding.shape == (128,)
    assert 100 < face.size < 400 and face.det_score > 0.3 and "dlib" in face.recognizer


def test_yaw_sign_follows_the_turn(analyzer, faces_dir):
    """02 is turned towards the image's right, 03 towards its left: opposite yaw, frontal near 0."""
    turned_right = _faces(analyzer, faces_dir / "aws_rek_subject1" / "02.jpg")[0].yaw
    turned_left = _faces(analyzer, faces_dir / "aws_rek_subject1" / "03.jpg")[0].yaw
    frontal = _faces(analyzer, faces_dir / "aws_rek_subject1" / "01.jpg")[0].yaw
    assert turned_right > 15 and turned_left < -15 and abs(frontal) < 10


def test_genuine_pairs_beat_impostor_pairs(analyzer, faces_dir):
    people = {name: [f for p in list_images(faces_dir / name) if (f := _faces(analyzer, p)[:1])]
              for name in ("lisa_debruine", "london_004", "london_005", "london_006", "london_025")}
    people = {k: [f[0] for f in v] for k, v in people.items()}
    genuine = [analyzer.similarity(a, b) for faces in people.values() for i, a in enumerate(faces)
               for b in faces[i + 1:]]
    impostor = [analyzer.similarity(a, b) for x in people for y in people if x < y
                for a in people[x] for b in people[y]]
    pairs = [(g, i) for g in genuine for i in impostor]
    auc = np.mean([g > i for g, i in pairs]) + 0.5 * np.mean([g == i for g, i in pairs])  # Mann-Whitney
    assert auc >= 0.99, (auc, min(genuine), max(impostor))
    assert max(genuine) <= 1.0 and min(impostor) < 0.0  # the similarity map is not clipped at 0


def test_identity_score_against_references(analyzer, faces_dir):
    lisa = [_faces(analyzer, p)[0] for p in list_images(faces_dir / "lisa_debruine")]
    other = _faces(analyzer, faces_dir / "london_004" / "01.jpg")[0]
    own = identity_score(analyzer, lisa[0], lisa[1:])
    foreign = identity_score(analyzer, other, lisa[1:])
    assert own["facesim_mean_ref"] > 0.4 > foreign["facesim_mean_ref"]
    assert own["facesim_max"] >= own["facesim_mean"]
    with pytest.raises(ValueError):
        identity_score(analyzer, other, [])


def test_error_rates_known_case():
    from workbench.faces.verify import error_rates, roc_auc

    genuine, impostor = np.array([0.9, 0.8, 0.7, 0.4]), np.array([0.1, 0.2, 0.3, 0.5])
    assert roc_auc(genuine, impostor) == 15 / 16
    rates = error_rates(genuine, impostor)
    assert rates["eer"] == 0.25 and rates["threshold_fmr_1pct"] == 0.7 and rates["fnmr_at_fmr_1pct"] == 0.25


@pytest.mark.slow
def test_verify_folder_with_degraded_copies(analyzer, faces_dir, tmp_path):
    """Genuine vs impostor ROC-AUC >= 0.99 on real photos plus blurred, darkened, JPEG-30,
    quarter-size and mirrored copies the test makes."""
    from PIL import ImageEnhance, ImageFilter, ImageOps

    from workbench.faces.verify import verify_folder

    degrade = {
        "blur": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
        "dark": lambda im: ImageEnhance.Brightness(im).enhance(0.5),
        "small": lambda im: im.resize((im.width // 4, im.height // 4)),
        "flip": ImageOps.mirror,
    }
    for person in ("lisa_debruine", "london_004", "london_005", "london_006", "london_025"):
        target = tmp_path / person
        target.mkdir()
        for path in list_images(faces_dir / person)[:2]:
            image = load_image(path)
            image.save(target / f"{path.stem}.png")
            image.save(target / f"{path.stem}-q30.jpg", quality=30)
            for name, fn in degrade.items():
                fn(image).save(target / f"{path.stem}-{name}.png")
    summary, table = verify_folder(tmp_path, analyzer)
    assert summary["identities"] == 5 and summary["genuine_pairs"] > 50
    assert summary["roc_auc"] >= 0.99, summary
    assert set(table.columns) >= {"a", "b", "genuine", "similarity", "distance"}


def test_five_point_pose_agrees_in_sign_with_68_point_pose(analyzer, faces_dir):
    """The insightface backend without its landmark model poses from 5 key points; same signs."""
    from workbench.faces.pose import pose_from_5

    for name, sign in (("02.jpg", 1), ("03.jpg", -1)):
        image = load_image(faces_dir / "aws_rek_subject1" / name)
        face = analyzer.analyze(image)[0]
        yaw5 = pose_from_5(face.keypoints, image.size)[0]
        assert sign * yaw5 > 15 and abs(yaw5 - face.yaw) < 10, (name, yaw5, face.yaw)


@pytest.mark.slow
def test_batches_on_worker_processes_give_the_faces_of_one_at_a_time(faces_dir, monkeypatch):
    """dlib's batch entry runs on worker processes (every core); it must find exactly what the
    one-photo path finds, including no face and the fallback detectors, and survive a dead worker."""
    from workbench.faces import parallel
    from workbench.faces.dlib_backend import DlibAnalyzer

    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    backend = DlibAnalyzer()
    files = [*sorted(list_images(faces_dir / "lisa_debruine"))[:3], faces_dir / "_noface" / "01.png",
             faces_dir / "aws_rek_subject1" / "06.jpg"]  # a profile: only the CNN fallback finds it
    photos = [load_image(path) for path in files]
    alone = [backend.analyze(photo) for photo in photos]
    for attempt in range(2):
        together = backend.analyze_many(photos)
        assert [len(f) for f in together] == [len(f) for f in alone] and not together[3]
        for mine, theirs in zip(together, alone, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                assert a.bbox == b.bbox and a.detector == b.detector
                assert np.array_equal(a.descriptor, b.descriptor)
        if attempt == 0:  # a worker that died is replaced on the next batch
            next(iter(parallel._workers.values()))[0].kill()


def test_faces_found_in_one_process_are_reused_by_another(analyzer, faces_dir):
    """Faces found in one process reach another (``known`` -> pickle -> ``learn``, as a Ray study's face tasks
    hand them to its cell tasks): it gets the same faces without running the detector, and still analyses
    what it has not seen."""
    import pickle

    from workbench.faces import CachedAnalyzer, image_key

    class Counting:
        name, version, licence = analyzer.name, analyzer.version, analyzer.licence

        def __init__(self):
            self.seen = 0

        def analyze_many(self, images):
            self.seen += len(images)
            return analyzer.backend.analyze_many(images)

        def analyze(self, image):
            return self.analyze_many([image])[0]

    photos = [load_image(path) for path in sorted(list_images(faces_dir / "lisa_debruine"))[:4]]
    finder = analyzer.analyze_many(photos[:3])
    worker = CachedAnalyzer(Counting())
    handed = analyzer.known(photos[:3])  # only what was found for these photos
    assert set(handed) == {image_key(p) for p in photos[:3]}
    worker.learn(pickle.loads(pickle.dumps(handed)))
    found = worker.analyze_many(photos)
    assert worker.backend.seen == 1  # only the photo never analysed
    for mine, theirs in zip(found[:3], finder, strict=True):
        assert [f.bbox for f in mine] == [f.bbox for f in theirs]
        assert all(np.array_equal(a.descriptor, b.descriptor) for a, b in zip(mine, theirs, strict=True))
