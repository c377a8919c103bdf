"""Degradations: deterministic, recorded in a manifest, and caught by the matching check.

The rates below were measured on the 12 clean photos used here (lisa_debruine 8 + one of each London
face), dlib recognizer, 2026-11-26: blur sigma 3/256 px -> blurry 12/12; darken 2 stops -> too_dark
12/12; overexpose 2 stops -> too_bright 12/12; downscale 8x -> blurry 12/12; sunglasses-like occlusion
-> sunglasses 12/12; skin smoothing (beauty 3) -> beauty_filter 9/12 on this pool (17/20 on a wider
one); clean originals: 0/12 flagged. Noise (std 30) and JPEG quality 30 have no flag of their own in
the vocabulary and are not asserted: the upload-quality study measures what they cost instead.
"""

from __future__ import annotations

import json

import pytest

from workbench.errors import WorkbenchError
from workbench.images import list_images, load_image
from workbench.selfies import DEFAULT_THRESHOLDS, check_selfies
from workbench.selfies.degrade import degrade_image, degrade_set
from workbench.selfies.photo import check_photo

CASES = [("blur", 3, "blurry", 0.9), ("darken", 2, "too_dark", 0.9), ("overexpose", 2, "too_bright", 0.9),
         ("downscale", 3, "blurry", 0.9), ("occlusion", 1, "sunglasses", 0.9), ("beauty", 3, "beauty_filter", 0.75)]


@pytest.fixture(scope="module")
def clean(faces_dir):
    paths = list_images(faces_dir / "lisa_debruine") + [faces_dir / f"london_{n}" / "01.jpg"
                                                         for n in ("004", "005", "006", "025")]
    return [(path, load_image(path)) for path in paths]


def _flags(image, analyzer, tmp_path, name):
    path = tmp_path / f"{name}.png"
    image.save(path)
    return check_photo(path, analyzer, DEFAULT_THRESHOLDS).flags


def test_clean_originals_mostly_pass(clean, analyzer, tmp_path):
    flagged = [path.name for path, image in clean if _flags(image, analyzer, tmp_path, "clean")]
    assert len(flagged) / len(clean) <= 0.1, flagged


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "strength", "flag", "rate"), CASES, ids=[c[0] for c in CASES])
def test_degradation_is_caught(clean, analyzer, tmp_path, kind, strength, flag, rate):
    caught = [flag in _flags(degrade_image(image, kind, strength, seed=i, analyzer=analyzer), analyzer, tmp_path, kind)
              for i, (_, image) in enumerate(clean)]
    assert sum(caught) / len(caught) >= rate, (kind, sum(caught), len(caught))


def test_degradations_are_deterministic(clean, analyzer):
    image = clean[0][1]
    for kind in ("noise", "jpeg", "beauty", "blur"):
        a = degrade_image(image, kind, 2, seed=5, analyzer=analyzer)
        assert a.tobytes() == degrade_image(image, kind, 2, seed=5, analyzer=analyzer).tobytes(), kind
    assert degrade_image(image, "noise", 2, seed=5).tobytes() != degrade_image(image, "noise", 2, seed=6).tobytes()


def test_degrade_set_writes_a_recorded_set(faces_dir, analyzer, tmp_path):
    out = degrade_set(faces_dir / "lisa_debruine", tmp_path / "blurred", "blur", 3, seed=1, fraction=0.5,
                      analyzer=analyzer)
    manifest = json.loads((out / "manifest.json").read_text())
    actions = manifest["outputs"]["photos"]
    assert manifest["config"]["kind"] == "blur" and manifest["seeds"] == [1] and len(actions) == 8
    assert sum(a.startswith("blur") for a in actions.values()) == 4
    report = {p.file: p for p in check_selfies(out, analyzer=analyzer, progress=False).photos}
    for name, action in actions.items():
        assert ("blurry" in report[name].flags) == action.startswith("blur"), name
    with pytest.raises(WorkbenchError, match="not empty"):
        degrade_set(faces_dir / "lisa_debruine", out, "blur", 3)


def test_set_level_degradations(faces_dir, analyzer, tmp_path):
    dup = degrade_set(faces_dir / "lisa_debruine", tmp_path / "dup", "duplicates", 2, seed=0)
    report = check_selfies(dup, analyzer=analyzer, progress=False)
    copies = [p for p in report.photos if "-copy" in p.file]
    assert len(copies) == 2 and len(report.set["duplicates"]) == 2
    assert all(any(c.file in g for g in report.set["duplicates"]) for c in copies)
    swapped = degrade_set(faces_dir / "lisa_debruine", tmp_path / "swap", "intruder", 1, seed=0,
                          others=faces_dir / "london_004")
    intruders = check_selfies(swapped, analyzer=analyzer, progress=False).set["intruders"]
    assert [i["file"] for i in intruders] == [p.name for p in list_images(swapped) if "intruder" in p.name]
    fewer = degrade_set(faces_dir / "lisa_debruine", tmp_path / "few", "fewer", 3, seed=0)
    assert len(list_images(fewer)) == 3
