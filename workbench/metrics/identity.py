"""Identity metrics of generated images against a likeness's photos.

Per image: face detected; FaceSim to the test photos (never trained on, never used to choose the
checkpoint: the number to report), to the training photos (what the model saw), and to the nearest
training photo (copy-paste, and its gap to the test photos), and whether it matches the person at the
recognizer's threshold, pair by pair (``id_match_rate``). Per prompt group: identity spread.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

IDENTITY_METRICS = ("face_detected", "test_facesim", "test_facesim_max", "train_facesim", "nearest_train_facesim",
                    "copy_paste_gap", "id_match_rate")


def image_identity(analyzer, faces, test, training, threshold: float | None = None) -> dict[str, float | None]:
    """``faces``: the generated image's faces (largest first). ``test``/``training``: lists of Face.
    ``threshold``: the recognizer's calibrated match threshold (``id_match_rate``)."""
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
    both = row["test_facesim"] is not None and row["nearest_train_facesim"] is not None
    row["copy_paste_gap"] = row["nearest_train_facesim"] - row["test_facesim"] if both else None
    # the threshold decides single pairs (as it was calibrated or published): the share of the person's test
    # photos this face is verified against
    row["id_match_rate"] = (float(np.mean([sim >= threshold for sim in test_sims]))
                            if test_sims and threshold is not None else None)
    return row


def real_copy_paste_gaps(analyzer, test, training) -> list[float]:
    """The copy-paste gap of the real test photos themselves: each test photo's nearest training photo
    minus its mean similarity to the *other* test photos. A photo of the person that nobody trained on
    already sits closer to some training photo than to the rest; a likeness copies only when its gap
    exceeds this one."""
    if len(test) < 2 or not training:
        return []
    gaps = []
    for index, face in enumerate(test):
        others = [analyzer.similarity(face, ref) for j, ref in enumerate(test) if j != index]
        gaps.append(max(analyzer.similarity(face, ref) for ref in training) - float(np.mean(others)))
    return gaps


def identity_spread(analyzer, faces) -> float | None:
    """Mean pairwise 1 - similarity of the generated faces; needs two. Identity drift between outputs,
    not PhotoMaker's Face-Div (that is ``face_div_photomaker``)."""
    if len(faces) < 2:
        return None
    return float(np.mean([1.0 - analyzer.similarity(a, b) for a, b in combinations(faces, 2)]))
