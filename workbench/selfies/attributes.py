"""Face attributes measured offline from the 68 landmarks and the pixels of face regions:
sunglasses, hat, expression and skin smoothing. Each returns plain numbers; the thresholds that turn
them into flags live in ``thresholds.py``.

All measurements are taken with the face rescaled so the inter-ocular distance (IOD, between eye
centres) is 100 px, which makes them independent of photo resolution and face size.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..faces.types import Face

IOD_PX = 100.0
SKIN_LAB_DISTANCE = 25.0  # a pixel within this Lab distance of the cheek median counts as skin


def _box(array: np.ndarray, points: np.ndarray, pad: float) -> np.ndarray:
    x0, y0 = points.min(0) - pad
    x1, y1 = points.max(0) + pad
    return array[int(max(0, y0)):int(max(0, y1)), int(max(0, x0)):int(max(0, x1))]


def _cheeks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quadrilaterals under each eye: eye bottom, mouth corner, nostril, jaw side."""
    return (np.array([landmarks[41], landmarks[48], landmarks[31], landmarks[2]]),
            np.array([landmarks[46], landmarks[54], landmarks[35], landmarks[14]]))


def measure(image: Image.Image, face: Face) -> dict[str, float]:
    """All attribute scores for one face with 68 landmarks (empty when it has none)."""
    if face.landmarks is None or len(face.landmarks) != 68:
        return {}
    points = face.landmarks.astype(np.float64)
    iod = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))
    if iod < 8:
        return {}
    scale = IOD_PX / iod
    x0, y0 = points.min(0) - 1.2 * iod
    x1, y1 = points.max(0) + 1.2 * iod
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    crop = np.asarray(image.crop((x0, y0, int(x1), int(y1))).convert("RGB"))
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    landmarks = (points - (x0, y0)) * scale
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    scores = _occlusions(lab, landmarks)
    scores.update(_expression(landmarks))
    scores.update(_skin_texture(lab[..., 0], landmarks))
    return scores


def _occlusions(lab: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """Eye-region brightness over cheek brightness (sunglasses make it < 0.4; clear glasses and dark
    photos stay above 0.5), and the skin fraction of the forehead band above the brows (a cap or hat
    makes it ~0; bare foreheads are 0.3-1.0, fringes lower it)."""
    left, right = _cheeks(landmarks)
    cheeks = np.concatenate([_box(lab, left, -5).reshape(-1, 3), _box(lab, right, -5).reshape(-1, 3)])
    if not len(cheeks):
        return {}
    skin = np.median(cheeks, axis=0)
    eyes = np.concatenate([_box(lab[..., 0], landmarks[36:42], 12).ravel(),
                           _box(lab[..., 0], landmarks[42:48], 12).ravel()])
    brow_top = landmarks[17:27, 1].min()
    band = lab[int(max(0, brow_top - 60)):int(max(0, brow_top - 10)),
               int(landmarks[19, 0]):int(landmarks[24, 0])].reshape(-1, 3)
    forehead = float((np.linalg.norm(band - skin, axis=1) < SKIN_LAB_DISTANCE).mean()) if len(band) else float("nan")
    return {"eye_brightness_ratio": float(eyes.mean() / max(skin[0], 1.0)), "forehead_skin": forehead}


def _expression(landmarks: np.ndarray) -> dict[str, float]:
    """Mouth opening and width per IOD, and the eye aspect ratio (Soukupova & Cech 2016)."""

    def eye_aspect(eye: np.ndarray) -> float:
        return float((np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4]))
                     / (2 * np.linalg.norm(eye[0] - eye[3])))

    return {"mouth_open": float(np.linalg.norm(landmarks[62] - landmarks[66]) / IOD_PX),
            "mouth_width": float(np.linalg.norm(landmarks[48] - landmarks[54]) / IOD_PX),
            "eye_aspect": (eye_aspect(landmarks[36:42]) + eye_aspect(landmarks[42:48])) / 2}


def _skin_texture(gray: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """Fine detail (|image - blur(sigma 1.5)|) on the cheeks over the same on eyes and mouth. Skin
    smoothing flattens cheeks while keeping the feature edges, so the ratio drops (unfiltered fixture
    faces: 0.29-0.98)."""
    detail = np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 1.5))
    left, right = _cheeks(landmarks)
    cheeks = np.concatenate([_box(detail, left, -5).ravel(), _box(detail, right, -5).ravel()])
    features = np.concatenate([_box(detail, landmarks[36:42], 8).ravel(), _box(detail, landmarks[42:48], 8).ravel(),
                               _box(detail, landmarks[48:60], 5).ravel()])
    if not len(cheeks) or not len(features):
        return {}
    return {"skin_detail": float(cheeks.mean()), "feature_detail": float(features.mean()),
            "skin_texture_ratio": float(cheeks.mean() / max(features.mean(), 1e-6))}
