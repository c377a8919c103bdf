"""The Face record and the analyzer protocol every recognizer backend follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@dataclass
class Face:
    """One detected face. Coordinates are pixels of the upright RGB image.

    ``keypoints`` are 5 points in insightface order (image-left eye, image-right eye, nose tip,
    image-left mouth corner, image-right mouth corner). ``yaw`` > 0 means the face is turned towards
    the image's right (the person's left); ``pitch`` > 0 looks up; ``roll`` > 0 tilts clockwise.
    ``embedding`` is L2-normalised; ``descriptor`` is the recognizer's raw output (dlib compares raw
    L2 distances, so it is kept). ``detector`` names the detector that found it (``hog``, ``haar``,
    ``cnn``, ``scrfd``).
    """

    bbox: tuple[float, float, float, float]
    keypoints: np.ndarray
    det_score: float
    embedding: np.ndarray
    recognizer: str
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    landmarks: np.ndarray | None = None
    descriptor: np.ndarray | None = field(default=None, repr=False)
    detector: str = ""
    # False when the backend's landmarks (and so pose, attributes and a comparable embedding) cannot be
    # trusted for this face: dlib's profile-capable CNN finds faces its 68-point model regresses to frontal.
    pose_reliable: bool = True

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def size(self) -> float:
        """Face size in pixels: the larger side of the box."""
        return max(self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height


@runtime_checkable
class FaceAnalyzer(Protocol):
    """Detect, landmark, pose and embed faces. ``analyze_many`` is the batched entry point."""

    name: str
    version: str
    licence: str

    def analyze(self, image: Image.Image) -> list[Face]: ...

    def analyze_many(self, images: list[Image.Image]) -> list[list[Face]]: ...

    def similarity(self, a: Face, b: Face) -> float: ...

    def distance(self, a: Face, b: Face) -> float: ...
