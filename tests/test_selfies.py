"""The upload gate on real photos and on copies the tests degrade themselves."""

from __future__ import annotations

import shutil

from PIL import Image, ImageFilter

from workbench.selfies import FLAGS, check_selfies


def _by_file(report):
    return {p.file: p for p in report.photos}


def test_subject1_set(analyzer, faces_dir, tmp_path):
    report = check_selfies(faces_dir / "aws_rek_subject1", analyzer=analyzer, out=tmp_path, progress=False)
    photos = _by_file(report)
    assert photos["01.jpg"].status == "pass" and photos["09.jpg"].status != "fail"
    assert "no_face" in photos["06.jpg"].flags and "no_face" in photos["07.jpg"].flags
    assert report.verdict in {"usable_with_warnings", "not_ready"}
    assert report.set["count"] == 9 and "06.jpg" not in report.set["training_files"]
    saved = (tmp_path / "check.json").read_text()
    assert '"verdict"' in saved and (tmp_path / "photos.parquet").is_file() and (tmp_path / "manifest.json").is_file()
    assert set(f for p in report.photos for f in p.flags) <= set(FLAGS)


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
