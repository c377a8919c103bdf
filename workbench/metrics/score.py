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
from .clip import DEFAULT_CLIP, ClipModel, ClipScorer, distribution_metrics
from .identity import face_diversity, image_identity
from .quality import no_reference

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
                 clip: ClipScorer, progress: bool = True, quality: bool = True) -> pd.DataFrame:
    """Identity rows (with the recognizer named) and, with ``quality``, image-quality rows per image,
    plus a Face-Div row per prompt group."""
    recognizer = f"{analyzer.name} ({analyzer.version})"
    no_refs = "no reference face (reference photos missing or faceless)"
    rows, faces_by_group = [], {}
    for item in tqdm(items, desc=f"scoring ({analyzer.name})", disable=not progress, unit="img"):
        base = {k: item.get(k) for k in ("image_id", *GROUP, "seed", "family")}
        image = load_image(root / item["path"])
        faces = analyzer.analyze(image)
        identity = image_identity(analyzer, faces, held_out, training)
        for metric, value in identity.items():
            reason = None
            if value is None:
                reason = "no face detected" if not faces else no_refs
            rows.append({**base, "metric": metric, "value": value, "reason": reason, "recognizer": recognizer})
        if quality:
            rows += _quality_rows(base, image, faces, item.get("prompt"), clip)
        if faces:
            faces_by_group.setdefault(tuple(item.get(k) for k in GROUP), []).append(faces[0])
    groups = {tuple(item.get(k) for k in GROUP) for item in items}
    for key in sorted(groups, key=str):
        value = face_diversity(analyzer, faces_by_group.get(key, []))
        rows.append({**dict(zip(GROUP, key, strict=True)), "image_id": None, "seed": None,
                     "family": items[0].get("family"), "metric": "face_div", "value": value,
                     "reason": None if value is not None else "fewer than two faces in this prompt group",
                     "recognizer": recognizer})
    return _frame(rows)


def _quality_rows(base: dict, image, faces, prompt: str | None, clip: ClipScorer) -> list[dict[str, Any]]:
    rows = [{**base, "metric": m, "value": v, "reason": None, "recognizer": None}
            for m, v in no_reference(image, faces[0] if faces else None).items()]
    clip_value = clip.score(image, prompt or "")
    rows.append({**base, "metric": "clip_score", "value": clip_value, "recognizer": None,
                 "reason": None if clip_value is not None else (clip.unavailable or "no prompt")})
    for metric, value in clip.iqa(image).items():
        rows.append({**base, "metric": metric, "value": value, "recognizer": None,
                     "reason": None if value is not None else clip.unavailable})
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["value"] = frame["value"].astype(float)
    return frame


DISTRIBUTION_GROUP = ["sampler", "steps", "guidance"]


def distribution_rows(items: list[dict[str, Any]], root: Path, reference: list[Path], clip: ClipModel
                      ) -> pd.DataFrame:
    """FID / KID on CLIP features per (sampler, steps, guidance) group against the reference photos."""
    references = []
    for path in reference:
        try:
            references.append(load_image(path))
        except ImageRefused:
            continue
    rows = []
    frame = pd.DataFrame(items)
    for key, group in frame.groupby(DISTRIBUTION_GROUP, sort=True):
        images = [load_image(root / p) for p in group["path"]]
        for metric, (value, reason) in distribution_metrics(images, references, clip).items():
            rows.append({**dict(zip(DISTRIBUTION_GROUP, key, strict=True)), "pack": None, "prompt_id": None,
                         "image_id": None, "seed": None, "family": group["family"].iloc[0], "metric": metric,
                         "value": value, "reason": reason, "recognizer": None})
    return _frame(rows)


def score(run: str | os.PathLike, references: str | os.PathLike | None = None,
          recognizers: str | list[str] = "auto", clip_model: str | None = DEFAULT_CLIP,
          fid_reference: str | os.PathLike | None = None, progress: bool = True,
          recognizer: str | None = None) -> pd.DataFrame:
    """Score a generation run against its likeness's selfies (or a ``references`` folder); writes
    ``scores.parquet`` into the run and returns it. ``recognizers``: a name, a list, or ``all``
    (every recognizer available here: select with one, report with the other). ``fid_reference``: a
    folder of real photos for FID/KID (default: the likeness's selfies)."""
    from ..faces import available_recognizers

    run = Path(run)
    if not (run / "images.parquet").is_file():
        raise WorkbenchError(f"{run}: not a generation run (no images.parquet). Run `workbench generate` first.")
    images = read_table(run / "images.parquet")
    names = recognizers if isinstance(recognizers, list) else [recognizer or recognizers]
    names = available_recognizers() if names == ["all"] else names
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
    clip_model_obj = ClipModel(clip_model)
    clip = ClipScorer(clip_model_obj)
    items = images.to_dict("records")
    tables = []
    for index, name in enumerate(names):
        analyzer = get_analyzer(name)
        held, _ = reference_faces(analyzer, [p for p in held_files if p.is_file()])
        training, _ = reference_faces(analyzer, [p for p in train_files if p.is_file()])
        tables.append(score_images(items, run, held, training, analyzer, clip, progress, quality=index == 0))
    real = list_images(fid_reference) if fid_reference else [p for p in held_files + train_files if p.is_file()]
    tables.append(distribution_rows(items, run, real, clip_model_obj))
    table = pd.concat(tables, ignore_index=True)
    write_table(table, run / SCORES)
    return table
