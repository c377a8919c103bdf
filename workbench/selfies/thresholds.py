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
    # Face luminance std; flat, washed-out faces lose the features the LoRA must learn.
    contrast_fail: float = 18.0
    # Without a face, a whole image this dark is reported as too dark (it is why no face was found).
    dark_image_fail: float = 40.0
    # |yaw| over 45 deg or |pitch| over 35 deg: too few profiles to learn from, and they hurt frontal output.
    yaw_warn_deg: float = 45.0
    pitch_warn_deg: float = 35.0
    # dlib similarity (0-1 scale, 0.30 = its native 0.6 distance) below this to the set's consensus
    # face: probably someone else.
    different_person_below: float = 0.30
    # Near-duplicates: perceptual-hash Hamming distance (64-bit pHash) at or below this, or face
    # similarity at or above ``duplicate_facesim`` with a pHash distance under ``duplicate_phash_loose``.
    duplicate_phash: int = 6
    duplicate_facesim: float = 0.93
    duplicate_phash_loose: int = 16


DEFAULT_THRESHOLDS = Thresholds()
