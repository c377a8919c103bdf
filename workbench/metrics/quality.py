"""No-reference image quality that needs no weights: sharpness and exposure of the face region (CLIP
score, CLIP-IQA, FID and KID are in ``clip.py``)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..selfies.photo import face_gray, sharpness


def no_reference(image: Image.Image, face=None) -> dict[str, float]:
    """Sharpness and exposure of the face region if there is a face, else of the whole image."""
    if face is not None:
        gray = face_gray(image, face)
    else:
        gray = np.asarray(image.convert("L").resize((128, 128), Image.BILINEAR), dtype=np.float32)
    return {"sharpness": sharpness(gray), "exposure": float(gray.mean()) / 255.0}
