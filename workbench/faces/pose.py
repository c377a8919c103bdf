"""Head pose (yaw, pitch, roll in degrees) from 2-D landmarks and a generic 3-D face.

``cv2.solvePnP`` fits the generic model's six points (nose tip, chin, outer eye corners, mouth
corners) to the detected ones with a pinhole camera whose focal length is the image width.
See https://learnopencv.com/head-pose-estimation-using-opencv-and-dlib/ for the method.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Generic face in mm, x to the image right, y up, z towards the camera.
MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0),  # nose tip (68-pt index 30)
    (0.0, -330.0, -65.0),  # chin (8)
    (-225.0, 170.0, -135.0),  # image-left eye outer corner (36)
    (225.0, 170.0, -135.0),  # image-right eye outer corner (45)
    (-150.0, -150.0, -125.0),  # image-left mouth corner (48)
    (150.0, -150.0, -125.0),  # image-right mouth corner (54)
], dtype=np.float64)
LANDMARK_INDEX_68 = (30, 8, 36, 45, 48, 54)
# The 5-point variant (insightface key points): eye centres sit ~65 mm inside the outer corners.
MODEL_POINTS_5 = np.array([
    (-160.0, 170.0, -115.0),  # image-left eye centre
    (160.0, 170.0, -115.0),  # image-right eye centre
    (0.0, 0.0, 0.0),  # nose tip
    (-150.0, -150.0, -125.0),  # image-left mouth corner
    (150.0, -150.0, -125.0),  # image-right mouth corner
], dtype=np.float64)


def pose_from_68(landmarks: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 68 dlib/iBUG landmarks."""
    return _solve(MODEL_POINTS, landmarks[list(LANDMARK_INDEX_68)], image_size)


def pose_from_5(keypoints: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) from the 5 key points alone (coarser: no chin, so pitch is weakly held)."""
    return _solve(MODEL_POINTS_5, keypoints, image_size)


def _solve(model_points: np.ndarray, points: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float, float]:
    image_points = np.asarray(points, dtype=np.float64)
    width, height = image_size
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    # Model y is up, image y is down: flip the model so one frame serves both.
    model = model_points * np.array([1.0, -1.0, -1.0])
    # DLT (the iterative solver's start) needs 6 points; SQPnP is globally optimal from 3.
    flags = cv2.SOLVEPNP_ITERATIVE if len(model) >= 6 else cv2.SOLVEPNP_SQPNP
    ok, rvec, _ = cv2.solvePnP(model, image_points, camera, np.zeros(4), flags=flags)
    if not ok:
        return float("nan"), float("nan"), float("nan")
    rotation, _ = cv2.Rodrigues(rvec)
    return _euler(rotation)


def _euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """Decompose R = Rz(roll) Ry(yaw) Rx(pitch), reported in the Face sign convention."""
    yaw = math.degrees(math.asin(-max(-1.0, min(1.0, rotation[2, 0]))))
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    # With the camera looking down +z and image y down, a face turned to the image right has R[2,0] < 0.
    return -yaw, -pitch, roll
