"""Every threshold of the upload gate in one place, with the reason for its value.

Measured on the fixture photos in ``datasets/`` (dlib recognizer, 2026-11-26); see tests for the
rates they reach. Change them here and the check, the app and the docs follow.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Set size: 10-30 photos is what Astria and MakeAiPhotos ask for; fewer starves the LoRA,
    # more adds training time with little identity gain.
    min_photos: int = 10
    max_photos: int = 30
    # Face size (larger side of the box, px). SD1.5 trains at 512 px crops: a face under 128 px is
    # upscaled 4x. HeadshotPro refuses faces under ~410 px at 1024; we warn below 200, fail below 96.
    face_fail_px: int = 96
    face_warn_px: int = 200
    # The photo itself: under 512 px on its short side cannot fill a 512 crop.
    min_short_side_px: int = 512
    # A box closer than this fraction of its size to a frame edge is cut off (chin, forehead, ears).
    edge_margin: float = 0.02
    # Sharpness = variance of the Laplacian of the face resized to 128 px, divided by the face's
    # luminance variance and scaled to a std of 50 (so dim faces are not called blurry). Sharp fixture
    # faces score 300-1500; a Gaussian blur of sigma 3 per 256 face-px drops them to 15-60.
    sharpness_fail: float = 100.0
    # Mean face luminance (0-255). Well-lit fixture faces are 56-165; the dark selfies 27-50.
    dark_fail: float = 55.0
    bright_fail: float = 215.0
    # Share of face pixels blown to white (>= 250): clean fixture faces 0-0.05; +2 stops of
    # over-exposure pushes them past 0.2 before the mean reaches ``bright_fail``.
    clipped_fail: float = 0.15
    # Face luminance std; flat, washed-out faces lose the features the LoRA must learn.
    contrast_fail: float = 18.0
    # A whole photo this dark is too dark whatever the face measures (a screen-lit face in a dark
    # room): the dark fixture selfies average 20-34, every other fixture photo 80 or more.
    dark_image_fail: float = 40.0
    bright_image_fail: float = 200.0
    # |yaw| over 45 deg or |pitch| over 35 deg: too few profiles to learn from, and they hurt frontal output.
    yaw_warn_deg: float = 45.0
    pitch_warn_deg: float = 35.0
    # Attribute scores (attributes.py), all at a face scale of 100 px between the eye centres.
    # Eye-region over cheek brightness: the sunglasses photo scores 0.28; clear glasses, dark selfies
    # and every other fixture face 0.51-1.00.
    sunglasses_below: float = 0.40
    # Skin-coloured share of the band above the brows: the cap photo 0.00; bare foreheads 0.15-1.00
    # (fringes and receding light lower it).
    hat_below: float = 0.08
    # Skin detail over feature detail: unfiltered fixture faces 0.29-0.98; skin smoothing at degrade
    # strength 2 drops them to 0.05-0.2. Only judged on faces of at least ``beauty_min_face_px``
    # (smaller faces have no resolvable skin texture).
    beauty_filter_below: float = 0.22
    beauty_min_face_px: int = 150
    # Expression: mouth opening over eye distance (fixture faces, smiles included, 0.00-0.23) and the
    # eye aspect ratio (open eyes 0.14-0.40; closed eyes fall under 0.10 in Soukupova & Cech 2016).
    mouth_open_above: float = 0.45
    eyes_closed_below: float = 0.10
    # Smiling (for expression variety): mouth width over eye distance; neutral fixture faces 0.72-0.96.
    smile_width_above: float = 1.0
    # dlib similarity (0-1 scale, 0.30 = its native 0.6 distance) below this to the set's consensus
    # face: probably someone else.
    different_person_below: float = 0.30
    # Near-duplicates: perceptual-hash Hamming distance (64-bit pHash) at or below this, or face
    # similarity at or above ``duplicate_facesim`` with a pHash distance under ``duplicate_phash_loose``.
    duplicate_phash: int = 6
    duplicate_facesim: float = 0.93
    duplicate_phash_loose: int = 16


DEFAULT_THRESHOLDS = Thresholds()
