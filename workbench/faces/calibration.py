"""Recognizer calibration: the similarity threshold at a fixed false-match rate (FMR), measured on a
named set of identities, stored with the recognizer's name, version and model hash.

Similarity scales differ between recognizers (ArcFace cosine, dlib's distance map), so a number like
"FaceSim 0.35" means nothing across them; "the share of the person's test photos a generated face is
verified against" (``id_match_rate``) does. A threshold at FMR f is only resolved when the set has at
least 10/f impostor pairs (about ten impostors expected above it); otherwise the record says so
(``resolvable: false``). ``match_threshold`` uses a calibration only where it resolves the FMR asked for
and comes from people disjoint from those evaluated; else the recognizer's published operating point
(dlib's distance 0.6), named with its source; else none, and ``id_match_rate`` says why.

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
# A threshold at FMR f is resolved with at least this many impostors expected above it (10 / f pairs).
MIN_EXPECTED_IMPOSTORS = 10
DEFAULT_FMR = 1e-3
SHIPPED = Path(__file__).parent / "calibrations"


def threshold_at(impostor: np.ndarray, genuine: np.ndarray, fmr: float) -> dict[str, Any]:
    """The lowest threshold whose FMR on ``impostor`` is <= ``fmr``, with the FNMR it costs on ``genuine``."""
    impostor = np.sort(np.asarray(impostor, dtype=float))
    allowed = int(np.floor(fmr * impostor.size))  # impostor pairs that may lie at or above the threshold
    needed = int(np.ceil(MIN_EXPECTED_IMPOSTORS / fmr))
    threshold = float(np.nextafter(impostor[impostor.size - 1 - allowed], np.inf)) if impostor.size else float("nan")
    return {"threshold": threshold, "fnmr": float((np.asarray(genuine) < threshold).mean()) if len(genuine) else None,
            "resolvable": bool(impostor.size >= needed), "impostor_pairs_needed": needed}


def calibrate(folder: str | os.PathLike, analyzer, set_name: str | None = None) -> dict[str, Any]:
    """Genuine and impostor pairs of ``folder`` (``<identity>/<photos>``) -> thresholds at ``FMRS``."""
    from .verify import verify_folder

    summary, table = verify_folder(folder, analyzer)
    genuine = table.loc[table.genuine, "similarity"].to_numpy()
    impostor = table.loc[~table.genuine, "similarity"].to_numpy()
    names = sorted(d.name for d in Path(folder).iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
    return {"recognizer": analyzer.name, "version": analyzer.version, "model_hash": analyzer.model_hash,
            "identity_set": set_name or Path(folder).name, "identities": summary["identities"],
            "identity_names": names,
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


def match_threshold(analyzer, fmr: float = DEFAULT_FMR, home: str | os.PathLike | None = None,
                    evaluated: set[str] | None = None) -> tuple[float | None, str]:
    """(threshold, its source): the similarity at or above which two faces (one pair) are called the same
    person. A calibration counts only where it resolves ``fmr`` (``MIN_EXPECTED_IMPOSTORS / fmr`` impostor
    pairs) and none of its identities is among ``evaluated`` (the people being scored); else the recognizer's
    published operating point; else (None, why)."""
    record = find(analyzer, home)
    why = f"no calibration for {analyzer.name} with this model (hash {analyzer.model_hash[:12]})"
    if record is not None:
        key = f"{fmr:g}"
        if key not in record["thresholds"]:
            known = ", ".join(record["thresholds"])
            raise WorkbenchError(f"calibration {record['file']} has no FMR {key}; it has {known}.")
        entry = record["thresholds"][key]
        overlap = sorted(set(record.get("identity_names", [])) & set(evaluated or ()))
        if not entry["resolvable"]:
            why = (f"the calibration on {record['identity_set']} does not resolve FMR {key} "
                   f"({record['impostor_pairs']} impostor pairs; {entry['impostor_pairs_needed']} needed)")
        elif evaluated is not None and "identity_names" not in record:
            why = f"the calibration on {record['identity_set']} does not name its people (cannot show it is disjoint)"
        elif overlap:
            why = f"the calibration on {record['identity_set']} includes the people evaluated ({', '.join(overlap)})"
        else:
            return entry["threshold"], (f"FMR {key} calibrated on {record['identity_set']} "
                                        f"({record['impostor_pairs']} impostor pairs, disjoint from those evaluated)")
    point = getattr(analyzer, "operating_point", None)
    if point is not None:
        return point[0], f"{point[1]} ({why})"
    return None, (f"{why}; {analyzer.name} has no published operating point: run `workbench faces calibrate DIR` "
                  f"on at least {int(np.ceil(MIN_EXPECTED_IMPOSTORS / fmr))} impostor pairs of other people")
