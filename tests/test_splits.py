"""Train / validation / test photos split by shoot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from workbench.errors import ConfigError
from workbench.images import list_images
from workbench.likeness.splits import find_shoots, make_splits, split_photos


def _boxes(analyzer, files):
    from workbench.images import load_image

    boxes = {}
    for path in files:
        faces = analyzer.analyze(load_image(path))
        boxes[path] = faces[0].bbox if faces else None
    return boxes


def test_shoots_are_told_apart_by_background_not_face(analyzer, faces_dir):
    """lisa_debruine: 01-04 in front of a clock wall, 05-08 in front of a door (the same person)."""
    files = list_images(faces_dir / "lisa_debruine")
    shoots, source = find_shoots(files, _boxes(analyzer, files))
    labels = [shoots[p] for p in files]
    assert source == "pixels" and len(set(labels)) == 2
    assert len(set(labels[:4])) == 1 and len(set(labels[4:])) == 1 and labels[0] != labels[4]
    subject1 = list_images(faces_dir / "aws_rek_subject1")  # one wall, one shirt: one shoot
    assert len(set(find_shoots(subject1, _boxes(analyzer, subject1))[0].values())) == 1


def _with_capture_times(faces_dir, tmp_path, hours):
    """Copies of subject1's photos stamped with EXIF capture times (hours after a start)."""
    folder = tmp_path / "stamped"
    folder.mkdir()
    for index, (path, hour) in enumerate(zip(list_images(faces_dir / "aws_rek_subject1"), hours, strict=False)):
        image = Image.open(path)
        exif = image.getexif()
        exif.get_ifd(0x8769)[36867] = f"2026:03:{1 + hour // 24:02d} {hour % 24:02d}:{index:02d}:00"
        image.save(folder / f"{index:02d}.jpg", exif=exif)
    return list_images(folder)


def test_three_shoots_from_capture_times_keep_test_out_of_training(faces_dir, tmp_path):
    files = _with_capture_times(faces_dir, tmp_path, [0, 0, 0, 5, 5, 5, 30, 30, 30])
    splits = make_splits(files, {}, validation=1, test=2, seed=0)
    assert splits.shoot_source == "exif" and len(set(splits.shoots.values())) == 3
    assert len(splits.test) >= 2 and not splits.test_shares_shoot_with_train
    test_shoots = {splits.shoots[p] for p in splits.test}
    assert not test_shoots & {splits.shoots[p] for p in splits.train}  # whole shoots only
    assert not set(splits.validation) & set(splits.train) and not set(splits.test) & set(splits.validation)
    card = splits.as_card()
    assert card["test_shares_shoot_with_train"] is False and set(card["splits"]) == {"train", "validation", "test"}


def test_too_few_shoots_or_photos_are_said_out_loud(faces_dir):
    files = list_images(faces_dir / "aws_rek_subject1")
    one_shoot = {p: "shoot-1" for p in files}
    asked = split_photos(files, one_shoot, validation=1, test=2)
    assert len(asked.test) == 2 and asked.test_shares_shoot_with_train and "same shoot" in asked.note
    default = split_photos(files, one_shoot)  # 9 photos: no test group unless asked
    assert default.test == [] and "no test group" in default.note and len(default.validation) == 2
    with pytest.raises(ConfigError, match="nothing to train on"):
        split_photos(files, one_shoot, validation=4, test=5)


def test_user_given_groups(faces_dir, tmp_path):
    files = list_images(faces_dir / "lisa_debruine")
    csv = tmp_path / "groups.csv"
    csv.write_text("file,group\n" + "".join(f"{p.name},{'test' if i < 2 else 'validation' if i < 3 else 'train'}\n"
                                             for i, p in enumerate(files)))
    splits = make_splits(files, {}, None, None, 0, splits_csv=str(csv))
    assert [p.name for p in splits.test] == ["01.jpg", "02.jpg"] and splits.shoot_source == "given"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,group\n01.jpg,holdout\n")
    with pytest.raises(ConfigError, match="bad.csv:2: group 'holdout'"):
        make_splits(files, {}, None, None, 0, splits_csv=str(bad))


def test_trainer_records_splits_and_never_trains_on_test(settings, analyzer, faces_dir, tmp_path):
    from workbench.likeness import train_likeness

    selfies = tmp_path / "lisa"
    shutil.copytree(faces_dir / "lisa_debruine", selfies)
    likeness = train_likeness(selfies, tmp_path / "lk", family="tiny-sd", settings=settings, analyzer=analyzer,
                              progress=False, steps=2, test=2)
    card = likeness.card
    trained = set(card["splits"]["train"])
    # two shoots (01-04, 05-08): the test photos are one whole shoot, so none shares a shoot with training
    assert len(card["splits"]["test"]) == 4 and not trained & set(card["splits"]["test"])
    assert card["test_shares_shoot_with_train"] is False
    test_shoots = {card["shoots"][Path(p).name] for p in card["splits"]["test"]}
    assert len(test_shoots) == 1 and not test_shoots & {card["shoots"][Path(p).name] for p in trained}
    assert set(card["shoots"]) == {p.name for p in list_images(selfies)}
    assert all("validation_facesim" in row for row in card["curve"])
    assert "test" in likeness.summary() and "shares a shoot" not in likeness.summary()
    from workbench.store import read_manifest

    hashes = read_manifest(likeness.path).inputs["photo_sha256"]
    assert len(hashes) == 8 and all(len(h) == 64 for h in hashes.values())
    assert read_manifest(likeness.path).environment["python"]
