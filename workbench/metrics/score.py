"""``score(run)``: one row per image x metric (plus Face-Div rows per prompt group), saved as Parquet.

A value that cannot be computed is ``None`` with a ``reason`` — never silently dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..errors import WorkbenchError
from ..faces import get_analyzer
from ..images import ImageRefused, list_images, load_image
from ..likeness.card import Likeness
from ..store import read_manifest, read_table, write_table
from .identity import face_diversity, image_identity
from .quality import DEFAULT_CLIP, ClipScorer, no_reference

GROUP = ["pack", "prompt_id", "sampler", "steps", "guidance"]
SCORES = "scores.parquet"


def reference_faces(analyzer, files: list[Path]) -> tuple[list, list[str]]:
    """Subject faces of the reference photos, and a note for each file that gave none."""
    faces, notes = [], []
    for path in files:
        try:
            found = analyzer.analyze(load_image(path))
        except ImageRefused as exc:
            notes.append(str(exc))
            continue
        if found:
            faces.append(found[0])
        else:
            notes.append(f"{path}: no face found")
    return faces, notes


def score_images(items: list[dict[str, Any]], root: Path, held_out: list, training: list, analyzer,
                 clip: ClipScorer, progress: bool = True) -> pd.DataFrame:
    recognizer = f"{analyzer.name} ({analyzer.version})"
    no_refs = "no reference face (reference photos missing or faceless)"
    rows, faces_by_group = [], {}
    for item in tqdm(items, desc="scoring", disable=not progress, unit="img"):
        base = {k: item.get(k) for k in ("image_id", *GROUP, "seed", "family")}
        image = load_image(root / item["path"])
        faces = analyzer.analyze(image)
        identity = image_identity(analyzer, faces, held_out, training)
        quality = no_reference(image, faces[0] if faces else None)
        for metric, value in identity.items():
            reason = None
            if value is None:
                reason = "no face detected" if not faces else no_refs
            rows.append({**base, "metric": metric, "value": value, "reason": reason, "recognizer": recognizer})
        for metric, value in quality.items():
            rows.append({**base, "metric": metric, "value": value, "reason": None, "recognizer": None})
        clip_value = clip(image, item.get("prompt") or "") if item.get("prompt") else None
        rows.append({**base, "metric": "clip_score", "value": clip_value, "recognizer": None,
                     "reason": None if clip_value is not None else (clip.unavailable or "no prompt")})
        if faces:
            faces_by_group.setdefault(tuple(item.get(k) for k in GROUP), []).append(faces[0])
    groups = {tuple(item.get(k) for k in GROUP) for item in items}
    for key in sorted(groups, key=str):
        value = face_diversity(analyzer, faces_by_group.get(key, []))
        rows.append({**dict(zip(GROUP, key, strict=True)), "image_id": None, "seed": None,
                     "family": items[0].get("family"), "metric": "face_div", "value": value,
                     "reason": None if value is not None else "fewer than two faces in this prompt group",
                     "recognizer": recognizer})
    frame = pd.DataFrame(rows)
    frame["value"] = frame["value"].astype(float)
    return frame


def score(run: str | os.PathLike, references: str | os.PathLike | None = None, recognizer: str = "auto",
          clip_model: str | None = DEFAULT_CLIP, progress: bool = True) -> pd.DataFrame:
    """Score a generation run against its likeness's selfies (or a ``references`` folder); writes
    ``scores.parquet`` into the run and returns it."""
    run = Path(run)
    if not (run / "images.parquet").is_file():
        raise WorkbenchError(f"{run}: not a generation run (no images.parquet). Run `workbench generate` first.")
    images = read_table(run / "images.parquet")
    analyzer = get_analyzer(recognizer)
    manifest = read_manifest(run)
    likeness_path = manifest.inputs.get("likeness") if manifest else None
    if references is not None:
        held_files, train_files = list_images(references), []
    elif likeness_path:
        card = Likeness.load(likeness_path).card
        held_files = [Path(p) for p in card["held_out_files"]]
        train_files = [Path(p) for p in card["training_files"]]
    else:
        held_files, train_files = [], []
    held, _ = reference_faces(analyzer, [p for p in held_files if p.is_file()])
    training, _ = reference_faces(analyzer, [p for p in train_files if p.is_file()])
    clip = ClipScorer(clip_model)
    table = score_images(images.to_dict("records"), run, held, training, analyzer, clip, progress)
    write_table(table, run / SCORES)
    return table
