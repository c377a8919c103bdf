"""Check a recognizer on your own photos: all genuine and impostor pairs of a folder of
``<identity>/<photos>`` -> ROC-AUC, EER, the threshold at 1% false-match rate, and the pair table."""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import WorkbenchError
from ..images import ImageRefused, list_images, load_image


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Mann-Whitney estimate: P(genuine score > impostor score), ties counted half."""
    diff = genuine[:, None] - impostor[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def error_rates(genuine: np.ndarray, impostor: np.ndarray) -> dict[str, float]:
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    fmr = np.array([(impostor >= t).mean() for t in thresholds])  # false match rate
    fnmr = np.array([(genuine < t).mean() for t in thresholds])  # false non-match rate
    k = int(np.argmin(np.abs(fmr - fnmr)))
    ok = np.where(fmr <= 0.01)[0]
    at_1 = int(ok[0]) if ok.size else len(thresholds) - 1
    return {"eer": float((fmr[k] + fnmr[k]) / 2), "eer_threshold": float(thresholds[k]),
            "threshold_fmr_1pct": float(thresholds[at_1]), "fnmr_at_fmr_1pct": float(fnmr[at_1])}


def verify_folder(folder: str | os.PathLike, analyzer) -> tuple[dict[str, Any], pd.DataFrame]:
    """All genuine and impostor pairs of ``<identity>/<photos>``: (summary with ROC-AUC, EER and the 1% FMR
    threshold, pair table)."""
    folder = Path(folder)
    identities = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
    faces, skipped = [], []
    for identity in identities:
        for path in list_images(identity):
            try:
                found = analyzer.analyze(load_image(path))
            except ImageRefused as exc:
                skipped.append(f"{path}: {exc.detail}")
                continue
            if found:
                faces.append((identity.name, path.relative_to(folder).as_posix(), found[0]))
            else:
                skipped.append(f"{path}: no face found")
    pairs = [{"a": fa, "b": fb, "genuine": ia == ib, "similarity": analyzer.similarity(a, b),
              "distance": analyzer.distance(a, b)} for (ia, fa, a), (ib, fb, b) in combinations(faces, 2)]
    table = pd.DataFrame(pairs)
    if table.empty or table["genuine"].all() or not table["genuine"].any():
        raise WorkbenchError(f"{folder}: need at least two identities with two photos each (with a face) to "
                             "form genuine and impostor pairs.")
    genuine = table.loc[table.genuine, "similarity"].to_numpy()
    impostor = table.loc[~table.genuine, "similarity"].to_numpy()
    summary = {"recognizer": f"{analyzer.name} ({analyzer.version})", "identities": len(identities),
               "faces": len(faces), "genuine_pairs": int(genuine.size), "impostor_pairs": int(impostor.size),
               "roc_auc": roc_auc(genuine, impostor), **error_rates(genuine, impostor), "skipped": skipped}
    return summary, table


def save_verification(summary: dict[str, Any], table: pd.DataFrame, json_out: str | os.PathLike) -> list[Path]:
    """The summary as JSON at ``json_out`` and the pair table beside it (``<name>.pairs.parquet``)."""
    from ..store import atomic_write_json, write_table

    json_out = Path(json_out)
    return [atomic_write_json(json_out, summary), write_table(table, json_out.with_suffix(".pairs.parquet"))]
