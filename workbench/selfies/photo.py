"""Per-photo checks: each gives a score, a flag when it fails, and one sentence of advice."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import imagehash
import numpy as np
from PIL import Image

from ..faces.types import Face
from ..images import ImageRefused, load_image
from . import attributes
from .thresholds import Thresholds

# Photos are analysed at most this large (12 MP JPEGs decode at 1/2 scale): faces stay far above
# every size threshold, and a 30-photo phone set is checked in seconds.
ANALYSIS_MAX_SIDE = 2000
MIN_PHOTO_SIDE = 64  # below this there is no face to check, and detectors misbehave
MAX_PHOTO_ASPECT = 4  # phone photos are at most ~2.2:1; a longer strip is not a selfie

# The stable flag vocabulary (documented in docs/privacy.md). Severity decides pass / warn / fail.
FAIL_FLAGS = {"unreadable", "no_face", "face_too_small", "blurry", "too_dark", "too_bright", "different_person"}
WARN_FLAGS = {"multiple_faces", "face_cut_off", "low_contrast", "extreme_pose", "low_resolution", "duplicate",
              "sunglasses", "hat", "beauty_filter", "extreme_expression"}
FLAGS = sorted(FAIL_FLAGS | WARN_FLAGS)
# Each flag in plain words, for people who are not engineers (the app's cards, the HTML check).
FLAG_PHRASES = {
    "unreadable": "Can't be used", "no_face": "No face found", "multiple_faces": "More than one face",
    "face_too_small": "Face too small", "face_cut_off": "Face cut off at the edge", "blurry": "Blurry",
    "too_dark": "Too dark", "too_bright": "Too bright", "low_contrast": "Flat, low-contrast light",
    "sunglasses": "Sunglasses hide the eyes", "hat": "A hat hides the hairline", "beauty_filter": "Looks filtered",
    "extreme_expression": "Unusual expression", "extreme_pose": "Face turned too far",
    "low_resolution": "Low resolution", "duplicate": "Almost the same as another photo",
    "different_person": "Looks like someone else",
}


@dataclass
class PhotoCheck:
    file: str
    flags: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list, repr=False)
    size: tuple[int, int] | None = None
    severity: dict[str, str] = field(default_factory=dict)
    phash: Any = field(default=None, repr=False)  # imagehash.ImageHash, for the duplicate check
    scale: float = 1.0  # analysis pixels per original pixel (large photos are checked downscaled)

    @property
    def subject(self) -> Face | None:
        return self.faces[0] if self.faces else None

    @property
    def subject_bbox(self) -> tuple[float, float, float, float] | None:
        """The subject's face box in the original photo's pixels (``subject.bbox`` is in analysis pixels)."""
        if self.subject is None:
            return None
        return tuple(v / self.scale for v in self.subject.bbox)

    @property
    def status(self) -> str:
        if any(self.severity.get(f) == "fail" for f in self.flags):
            return "fail"
        return "warn" if self.flags else "pass"

    def flag(self, name: str, advice: str, severity: str | None = None) -> None:
        """Raise ``name`` (a word of the vocabulary) with its advice; severity defaults by flag."""
        if name not in FAIL_FLAGS | WARN_FLAGS:
            raise ValueError(f"unknown flag {name!r}")
        if name not in self.flags:
            self.flags.append(name)
            self.advice.append(advice)
            self.severity[name] = severity or ("fail" if name in FAIL_FLAGS else "warn")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "status": self.status, "flags": list(self.flags), "scores": dict(self.scores),
                "advice": list(self.advice), "severity": dict(self.severity)}


def face_gray(image: Image.Image, face: Face, side: int = 128) -> np.ndarray:
    """The face box as a ``side``-pixel grayscale float array (size-normalised measurements)."""
    x0, y0, x1, y1 = (int(round(v)) for v in face.bbox)
    crop = image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))).convert("L").resize((side, side), Image.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


def sharpness(gray: np.ndarray) -> float:
    """Laplacian variance normalised by luminance variance (std scaled to 50)."""
    lap = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    return lap / max(float(gray.std()), 5.0) ** 2 * 2500.0


def refused_entry(path: Path) -> PhotoCheck | None:
    """A card for what is in a selfie folder but is not a photo we may read: a link, a folder, a
    GIF, a file without a photo extension. None for a regular photo file."""
    from ..images import IMAGE_SUFFIXES

    result = PhotoCheck(file=path.name)
    result.scores["readable"] = 0.0
    if path.is_symlink():
        result.flag("unreadable", "This is a link to another file, which is never followed (it could point at "
                    "someone else's photo). Copy the photo itself into the folder.")
    elif path.is_dir():
        result.flag("unreadable", "This is a folder, not a photo. Put the photos directly in the set's folder.")
    elif path.suffix.lower() not in IMAGE_SUFFIXES:
        kind = f"a {path.suffix.lower()} file" if path.suffix else "a file without an extension"
        result.flag("unreadable", f"This is {kind}, not a supported photo. Export it as JPEG, PNG, WebP or HEIC.")
    else:
        return None
    return result


def check_photo(path: Path, analyzer, limits: Thresholds, name: str | None = None) -> PhotoCheck:
    """Run every per-photo check on one file; never raises for a bad photo."""
    result, image = read_photo(path, limits, name)
    return result if image is None else finish_photo(result, image, analyzer.analyze(image), limits)


def read_photo(path: Path, limits: Thresholds, name: str | None = None) -> tuple[PhotoCheck, Image.Image | None]:
    """The checks before any face detector: readable, size, aspect, resolution. The image (scaled to
    the analysis size) comes back when faces should be looked for in it, else None."""
    refused = refused_entry(path)
    if refused is not None:
        return refused, None
    result = PhotoCheck(file=name or path.name)
    # 1. read
    try:
        image = load_image(path, max_side=ANALYSIS_MAX_SIDE)
    except ImageRefused as exc:
        result.scores["readable"] = 0.0
        result.flag("unreadable", f"{exc.detail}. {exc.fix}")
        return result, None
    result.size = image.info.get("original_size", image.size)
    short, long = min(result.size), max(result.size)
    if short < MIN_PHOTO_SIDE or long > MAX_PHOTO_ASPECT * short:  # refused before any detector sees it
        result.scores["readable"] = 0.0
        what = (f"only {result.size[0]}x{result.size[1]} px" if short < MIN_PHOTO_SIDE
                else f"{result.size[0]}x{result.size[1]} px, a strip rather than a photo")
        result.flag("unreadable", f"The image is {what}; use a photo of at least {MIN_PHOTO_SIDE} px on the "
                    f"short side and no longer than {MAX_PHOTO_ASPECT}:1.")
        return result, None
    result.scale = image.width / result.size[0]
    result.phash = imagehash.phash(image)
    result.scores["short_side_px"] = float(min(result.size))
    if min(result.size) < limits.min_short_side_px:
        result.flag("low_resolution", f"The photo is only {result.size[0]}x{result.size[1]}; use the original from "
                    f"your phone (at least {limits.min_short_side_px} px on the short side).")
    return result, image


def finish_photo(result: PhotoCheck, image: Image.Image, faces: list[Face], limits: Thresholds) -> PhotoCheck:
    """The checks on the faces found in the photo ``read_photo`` returned."""
    scale = result.scale
    # 2. the faces
    result.faces = faces
    result.scores["faces"] = float(len(result.faces))
    luminance = float(np.asarray(image.convert("L"), dtype=np.float32).mean())
    result.scores["image_brightness"] = luminance
    if not result.faces:
        if luminance < limits.dark_image_fail:
            result.flag("too_dark", "The photo is so dark that no face can be found; take it facing a window "
                        "or a lamp.")
        elif luminance > limits.bright_image_fail:
            result.flag("too_bright", "The photo is so washed out that no face can be found; avoid direct sun, "
                        "flash or over-exposure.")
        result.flag("no_face", "No face was found; use a photo where your face is clearly visible and turned "
                    "towards the camera.")
        return result
    if len(result.faces) > 1:
        result.flag("multiple_faces", f"{len(result.faces)} faces: the largest, {where(result.faces[0], image)}, is "
                    "taken as you. Crop the others out or use a photo of you alone.")
    _check_face(image, result.faces[0], result, limits, scale)
    return result


def where(face: Face, image: Image.Image) -> str:
    """Where a face is in the photo, in words ("top left", "in the middle")."""
    x0, y0, x1, y1 = face.bbox
    column = ("left", "middle", "right")[min(2, int(3 * (x0 + x1) / 2 / image.width))]
    row = ("top", "middle", "bottom")[min(2, int(3 * (y0 + y1) / 2 / image.height))]
    if row == column == "middle":
        return "in the middle"
    return "at the " + " ".join(w for w in (row, column) if w != "middle")


def _check_face(image: Image.Image, face: Face, result: PhotoCheck, limits: Thresholds, scale: float = 1.0) -> None:
    """Face checks on the analysis image; pixel sizes are reported in the original photo's pixels."""
    scores = result.scores
    face_px = face.size / scale
    scores.update(face_px=face_px, det_score=face.det_score, yaw=face.yaw, pitch=face.pitch, roll=face.roll)
    if face_px < limits.face_fail_px:
        result.flag("face_too_small", f"Your face is only {face_px:.0f} px across; move closer or crop so your "
                    "face fills about a third of the photo.")
    elif face_px < limits.face_warn_px:
        result.flag("face_too_small", f"Your face is {face_px:.0f} px across; closer photos teach the model "
                    "more detail.", severity="warn")
    margin = limits.edge_margin * face.size
    x0, y0, x1, y1 = face.bbox
    if x0 < margin or y0 < margin or image.width - x1 < margin or image.height - y1 < margin:
        result.flag("face_cut_off", "Your face touches the edge of the photo; use one with your whole head and "
                    "some space around it.")
    gray = face_gray(image, face)
    scores["sharpness"] = sharpness(gray)
    scores["brightness"] = float(gray.mean())
    scores["contrast"] = float(gray.std())
    scores["clipped"] = float((gray >= 250).mean())
    if scores["sharpness"] < limits.sharpness_fail:
        result.flag("blurry", "Your face is blurry; hold the phone still, tap to focus on your face, and avoid "
                    "zoomed or screenshot copies.")
    if scores["brightness"] < limits.dark_fail or scores["image_brightness"] < limits.dark_image_fail:
        result.flag("too_dark", "Your face is too dark; face a window or a lamp.")
    elif scores["brightness"] > limits.bright_fail or scores["clipped"] > limits.clipped_fail:
        result.flag("too_bright", "Your face is washed out; avoid direct sun or flash on your face.")
    elif scores["contrast"] < limits.contrast_fail:
        result.flag("low_contrast", "Your face looks flat; use even light from the front rather than haze or "
                    "backlight.")
    if not face.pose_reliable:
        scores["pose_known"] = 0.0
        result.flag("extreme_pose", "Only the profile-capable detector found your face: it is turned too far "
                    "(profile) or tilted steeply up or down. Use photos facing the camera or three-quarter views.")
    elif abs(face.yaw) > limits.yaw_warn_deg or abs(face.pitch) > limits.pitch_warn_deg:
        result.flag("extreme_pose", f"Your head is turned more than {limits.yaw_warn_deg:.0f} degrees or tilted "
                    f"more than {limits.pitch_warn_deg:.0f}; a three-quarter view (turned a little, both eyes "
                    "visible) helps, a profile or a strong up/down tilt does not.")
    _check_attributes(image, face, result, limits, face_px)


def _check_attributes(image: Image.Image, face: Face, result: PhotoCheck, limits: Thresholds, face_px: float) -> None:
    """Sunglasses, hat, expression and skin smoothing, from landmarks and face-region pixels."""
    if not face.pose_reliable:
        return  # landmarks are unreliable on this face (the backend says so)
    measured = attributes.measure(image, face)
    result.scores.update(measured)
    if measured.get("eye_brightness_ratio", 1.0) < limits.sunglasses_below:
        result.flag("sunglasses", "Your eyes are hidden (sunglasses or a dark band over them); the model must see "
                    "your eyes. Use photos without sunglasses.")
    if measured.get("forehead_skin", 1.0) < limits.hat_below:
        result.flag("hat", "Your forehead is covered (a hat, cap or hood); take it off so the model learns your "
                    "hairline and head shape.")
    if measured.get("mouth_open", 0.0) > limits.mouth_open_above or \
            measured.get("eye_aspect", 1.0) < limits.eyes_closed_below:
        result.flag("extreme_expression", "A strong expression (mouth wide open or eyes shut) distorts your face; "
                    "use relaxed expressions, neutral or smiling.")
    if face_px >= limits.beauty_min_face_px and \
            measured.get("skin_texture_ratio", 1.0) < limits.beauty_filter_below:
        result.flag("beauty_filter", "Your skin looks airbrushed (a beauty filter or heavy smoothing); use the "
                    "unfiltered original so the model learns your real skin.")
