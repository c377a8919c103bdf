"""Identity metrics of generated images against a likeness's reference photos.

Per image: face detected; FaceSim to the mean reference embedding and mean/max over references;
held-out FaceSim (photos never trained on) next to nearest-training similarity, so copy-paste shows.
Per prompt group: Face-Div = mean pairwise dissimilarity (1 - similarity) of the generated faces.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ..faces import identity_score


def image_identity(analyzer, faces, held_out, training) -> dict[str, float | None]:
    """``faces``: the generated image's faces (largest first). References are lists of Face."""
    row: dict[str, float | None] = {"face_detected": float(bool(faces))}
    names = ("facesim_mean_ref", "facesim_mean", "facesim_max", "heldout_facesim", "nearest_train_facesim")
    if not faces:
        return {**row, **{n: None for n in names}}
    face, references = faces[0], held_out + training
    row.update(identity_score(analyzer, face, references) if references else {n: None for n in names[:3]})
    row["heldout_facesim"] = float(np.mean([analyzer.similarity(face, r) for r in held_out])) if held_out else None
    row["nearest_train_facesim"] = max((analyzer.similarity(face, r) for r in training), default=None)
    return row


def face_diversity(analyzer, faces) -> float | None:
    """Mean pairwise 1 - similarity; needs two faces."""
    if len(faces) < 2:
        return None
    return float(np.mean([1.0 - analyzer.similarity(a, b) for a, b in combinations(faces, 2)]))
