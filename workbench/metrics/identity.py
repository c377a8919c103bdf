"""Identity metrics of generated images against a likeness's photos.

Per image: face detected; FaceSim to the test photos (never trained on, never used to choose the
checkpoint: the number to report), to the training photos (what the model saw), and to the nearest
training photo (copy-paste). Per prompt group: identity spread (``face_div``).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

IDENTITY_METRICS = ("face_detected", "test_facesim", "test_facesim_max", "train_facesim", "nearest_train_facesim")


def image_identity(analyzer, faces, test, training) -> dict[str, float | None]:
    """``faces``: the generated image's faces (largest first). ``test``/``training``: lists of Face."""
    row: dict[str, float | None] = {"face_detected": float(bool(faces))}
    if not faces:
        return {**row, **{n: None for n in IDENTITY_METRICS[1:]}}
    face = faces[0]
    test_sims = [analyzer.similarity(face, ref) for ref in test]
    train_sims = [analyzer.similarity(face, ref) for ref in training]
    row["test_facesim"] = float(np.mean(test_sims)) if test_sims else None
    row["test_facesim_max"] = float(np.max(test_sims)) if test_sims else None
    row["train_facesim"] = float(np.mean(train_sims)) if train_sims else None
    row["nearest_train_facesim"] = float(np.max(train_sims)) if train_sims else None
    return row


def face_diversity(analyzer, faces) -> float | None:
    """Mean pairwise 1 - similarity; needs two faces."""
    if len(faces) < 2:
        return None
    return float(np.mean([1.0 - analyzer.similarity(a, b) for a, b in combinations(faces, 2)]))
