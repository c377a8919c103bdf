"""Recognizer calibration: the similarity threshold at a fixed false-match rate (FMR), measured on a
named set of identities, stored with the recognizer's name, version and model hash.

Similarity scales differ between recognizers (ArcFace cosine, dlib's distance map), so a number like
"FaceSim 0.35" means nothing across them; "the share of generated faces that match the person at
FMR 1e-3" (``id_match_rate``) does. A threshold at FMR f is only resolved when the set has at least 1/f
impostor pairs; otherwise the record says so (``resolvable: false``) and the threshold is the highest
impostor similarity seen — stricter than needed, never looser.

Shipped calibrations (``calibrations/*.json``) were measured with ``workbench faces calibrate`` on the
bundled ``datasets/sample-selfies``; your own go to ``<home>/calibrations`` and take precedence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WorkbenchError

FMRS = (1e-2, 1e-3, 1e-4)
DEFAULT_FMR = 1e-3
SHIPPED = Path(__file__).parent / "calibrations"


def threshold_at(impostor: np.ndarray, genuine: np.ndarray, fmr: float) -> dict[str, Any]:
    """The lowest threshold whose FMR on ``impostor`` is <= ``fmr``, with the FNMR it costs on ``genuine``."""
    impostor = np.sort(np.asarray(impostor, dtype=float))
    allowed = int(np.floor(fmr * impostor.size))  # impostor pairs that may lie at or above the threshold
    resolvable = allowed >= 1
    threshold = float(np.nextafter(impostor[impostor.size - 1 - allowed], np.inf)) if impostor.size else float("nan")
    return {"threshold": threshold, "fnmr": float((np.asarray(genuine) < threshold).mean()) if len(genuine) else None,
            "resolvable": bool(resolvable), "impostor_pairs_needed": int(np.ceil(1 / fmr))}


def calibrate(folder: str | os.PathLike, analyzer, set_name: str | None = None) -> dict[str, Any]:
    """Genuine and impostor pairs of ``folder`` (``<identity>/<photos>``) -> thresholds at ``FMRS``."""
    from .verify import verify_folder

    summary, table = verify_folder(folder, analyzer)
    genuine = table.loc[table.genuine, "similarity"].to_numpy()
    impostor = table.loc[~table.genuine, "similarity"].to_numpy()
    return {"recognizer": analyzer.name, "version": analyzer.version, "model_hash": analyzer.model_hash,
            "identity_set": set_name or Path(folder).name, "identities": summary["identities"],
            "faces": summary["faces"], "genuine_pairs": int(genuine.size), "impostor_pairs": int(impostor.size),
            "roc_auc": summary["roc_auc"],
            "thresholds": {f"{fmr:g}": threshold_at(impostor, genuine, fmr) for fmr in FMRS}}


def user_dir(home: str | os.PathLike) -> Path:
    return Path(home) / "calibrations"


def save(calibration: dict[str, Any], home: str | os.PathLike) -> Path:
    """Keep a calibration in the workspace, named by recognizer and model hash; ``find`` reads it back."""
    from ..store import atomic_write_json

    return atomic_write_json(user_dir(home) / f"{calibration['recognizer']}-{calibration['model_hash'][:12]}.json",
                             calibration)


def find(analyzer, home: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The calibration for exactly this recognizer model (name and model hash): yours first, then shipped."""
    folders = ([user_dir(home)] if home else []) + [SHIPPED]
    for folder in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                from ..errors import ArtifactError

                raise ArtifactError(f"{path}: not a readable calibration ({type(exc).__name__}); remove it and run "
                                    "`workbench faces calibrate` again.") from None
            if not isinstance(record, dict):
                continue
            if record.get("recognizer") == analyzer.name and record.get("model_hash") == analyzer.model_hash:
                return {**record, "file": str(path)}
    return None


def match_threshold(analyzer, fmr: float = DEFAULT_FMR, home: str | os.PathLike | None = None
                    ) -> tuple[float | None, str]:
    """(threshold, note): the similarity at or above which two faces are called the same person."""
    record = find(analyzer, home)
    if record is None:
        return None, (f"no calibration for {analyzer.name} with this model (hash {analyzer.model_hash[:12]}); run "
                      "`workbench faces calibrate DIR` on a folder of <identity>/<photos>")
    key = f"{fmr:g}"
    if key not in record["thresholds"]:
        known = ", ".join(record["thresholds"])
        raise WorkbenchError(f"calibration {record['file']} has no FMR {key}; it has {known}.")
    entry = record["thresholds"][key]
    note = f"FMR {key} on {record['identity_set']} ({record['impostor_pairs']} impostor pairs)"
    if not entry["resolvable"]:
        note += f"; not resolved (needs {entry['impostor_pairs_needed']} pairs): the highest impostor similarity"
    return entry["threshold"], note
