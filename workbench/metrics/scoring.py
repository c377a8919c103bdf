"""``score(run)``: one row per image x metric (plus Face-Div rows per prompt group), saved as Parquet.

A value that cannot be computed is ``None`` with a ``reason`` — never silently dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..artifacts import IMAGES, SCORES, read_images
from ..errors import WorkbenchError
from ..faces import get_analyzer
from ..images import ImageRefused, list_images, load_image
from ..likeness.card import Likeness
from ..store import read_manifest, write_manifest, write_table
from .clip import DEFAULT_CLIP, ClipModel, ClipScorer, distribution_metrics
from .identity import identity_spread, image_identity, real_copy_paste_gaps
from .lpips import LpipsModel, aligned_crop, face_div_lpips
from .quality import no_reference

GROUP = ["pack", "prompt_id", "sampler", "steps", "guidance"]


def reference_faces(analyzer, files: list[Path], batch: int = 16) -> tuple[list, list[str]]:
    """Subject faces of the reference photos (a batch at a time through the backend's batch entry), and
    a note for each file that gave none."""
    faces, notes = [], []
    for start in range(0, len(files), batch):
        loaded = []
        for path in files[start:start + batch]:
            try:
                loaded.append((path, load_image(path)))
            except ImageRefused as exc:
                notes.append(str(exc))
        for (path, _), found in zip(loaded, analyzer.analyze_many([image for _, image in loaded]), strict=True):
            if found:
                faces.append(found[0])
            else:
                notes.append(f"{path}: no face found")
    return faces, notes


def _with_faces(analyzer, items: list[dict], root: Path, batch: int = 32):
    """(item, image, faces) per generated image; faces are found a batch at a time through the
    backend's batch entry (every core for dlib, one session call for ArcFace)."""
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        images = [load_image(root / item["path"]) for item in chunk]
        yield from zip(chunk, images, analyzer.analyze_many(images), strict=True)


def score_images(items: list[dict[str, Any]], root: Path, test: list, training: list, analyzer,
                 clip: ClipScorer, progress: bool = True, quality: bool = True,
                 reasons: dict[str, str] | None = None, threshold: tuple[float | None, str] = (None, ""),
                 lpips: LpipsModel | None = None) -> pd.DataFrame:
    """Identity rows (with the recognizer named) and, with ``quality``, image-quality rows per image; per
    prompt group identity spread and, with ``lpips``, PhotoMaker's Face-Div. ``reasons`` says why
    references are missing; ``threshold`` is the recognizer's calibrated match threshold and its note."""
    recognizer = f"{analyzer.name} ({analyzer.version})"
    reasons = reasons or {}
    test_reason, train_reason = reasons.get("test", "no test face"), reasons.get("train", "no training face")
    why = {"test_facesim": test_reason, "test_facesim_max": test_reason, "train_facesim": train_reason,
           "nearest_train_facesim": train_reason, "copy_paste_gap": test_reason if not test else train_reason,
           "id_match_rate": test_reason if not test else threshold[1]}
    rows, faces_by_group, crops_by_group = [], {}, {}
    for item, image, faces in tqdm(_with_faces(analyzer, items, root), total=len(items), unit="img",
                                   desc=f"scoring ({analyzer.name})", disable=not progress):
        base = {k: item.get(k) for k in ("image_id", *GROUP, "seed", "family")}
        for metric, value in image_identity(analyzer, faces, test, training, threshold[0]).items():
            reason = None
            if value is None:
                reason = "no face detected" if not faces else why.get(metric, "not computable")
            rows.append({**base, "metric": metric, "value": value, "reason": reason, "recognizer": recognizer,
                         "note": threshold[1] if metric == "id_match_rate" and value is not None else None})
        if item.get("before_path") and test:  # the face detailer ran: the same image before it, same references
            before = analyzer.analyze(load_image(root / item["before_path"]))
            value = image_identity(analyzer, before, test, training)["test_facesim"]
            rows.append({**base, "metric": "test_facesim_before_detailer", "value": value, "recognizer": recognizer,
                         "reason": None if value is not None else "no face detected before the detailer"})
        if quality:
            rows += _quality_rows(base, image, faces, item.get("prompt_plain") or item.get("prompt"), clip)
        if faces:
            key = tuple(item.get(k) for k in GROUP)
            faces_by_group.setdefault(key, []).append(faces[0])
            if lpips is not None and lpips.net is not None:
                crops_by_group.setdefault(key, []).append(aligned_crop(image, faces[0]))
    groups = {tuple(item.get(k) for k in GROUP) for item in items}
    for key in sorted(groups, key=str):
        group = {**dict(zip(GROUP, key, strict=True)), "image_id": None, "seed": None, "family": items[0].get("family")}
        spread = identity_spread(analyzer, faces_by_group.get(key, []))
        rows.append({**group, "metric": "identity_spread", "value": spread, "recognizer": recognizer,
                     "reason": None if spread is not None else "fewer than two faces in this prompt group"})
        if lpips is not None and quality:
            div = face_div_lpips(lpips, crops_by_group.get(key, []))
            rows.append({**group, "metric": "face_div_lpips", "value": div, "recognizer": None, "region": "face",
                         "reason": None if div is not None else lpips.unavailable or "fewer than two faces in this "
                         "prompt group"})
    return _frame(rows)


def real_gap_rows(analyzer, test_files: list[Path], test: list, training: list) -> pd.DataFrame:
    """``copy_paste_gap_real``: the same gap for the real test photos (one row per test photo)."""
    recognizer = f"{analyzer.name} ({analyzer.version})"
    gaps = real_copy_paste_gaps(analyzer, test, training)
    if not gaps:
        return _frame([{"image_id": None, "photo": None, "metric": "copy_paste_gap_real", "value": None,
                        "recognizer": recognizer, "reason": "needs two test photos with a face and training photos"}])
    names = [p.name for p in test_files][:len(gaps)]
    return _frame([{"image_id": None, "photo": name, "metric": "copy_paste_gap_real", "value": gap,
                    "recognizer": recognizer, "reason": None} for name, gap in zip(names, gaps, strict=True)])


def _quality_rows(base: dict, image, faces, prompt: str | None, clip: ClipScorer) -> list[dict[str, Any]]:
    region = "face" if faces else "image"
    rows = [{**base, "metric": m, "value": v, "reason": None, "recognizer": None, "region": region}
            for m, v in no_reference(image, faces[0] if faces else None).items()]
    clip_value = clip.score(image, prompt or "")
    rows.append({**base, "metric": "clip_score", "value": clip_value, "recognizer": None,
                 "reason": None if clip_value is not None else (clip.unavailable or "no prompt")})
    for metric, value in clip.iqa(image).items():
        rows.append({**base, "metric": metric, "value": value, "recognizer": None,
                     "reason": None if value is not None else clip.iqa_unavailable})
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["value"] = frame["value"].astype(float)
    return frame


DISTRIBUTION_GROUP = ["sampler", "steps", "guidance"]


def distribution_rows(items: list[dict[str, Any]], root: Path, reference: list[Path], clip: ClipModel,
                      missing: str | None = None) -> pd.DataFrame:
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
        if missing:
            results = {m: (None, missing) for m in ("fid_clip", "kid_clip", "kid_clip_std")}
        else:
            results = distribution_metrics([load_image(root / p) for p in group["path"]], references, clip)
        for metric, (value, reason) in results.items():
            rows.append({**dict(zip(DISTRIBUTION_GROUP, key, strict=True)), "pack": None, "prompt_id": None,
                         "image_id": None, "seed": None, "family": group["family"].iloc[0], "metric": metric,
                         "value": value, "reason": reason, "recognizer": None})
    return _frame(rows)


def reference_files(run: Path, references: str | os.PathLike | None, likeness) -> tuple[list[Path], list[Path],
                                                                                       dict[str, str], dict]:
    """(test photos, training photos, why-missing, facts): from ``references`` (a folder, as test photos)
    or the likeness's test/train split. A listed photo that is gone is an error naming it."""
    if likeness is None:
        manifest = read_manifest(run)
        path = manifest.inputs.get("likeness") if manifest else None
        likeness = Likeness.load(path) if path else None
    elif not isinstance(likeness, Likeness):
        likeness = Likeness.load(likeness)
    reasons, facts = {}, {"references": "none", "test_shares_shoot_with_train": None}
    train = likeness.split("train") if likeness else []
    if references is not None:
        test = list_images(references)
        facts["references"] = f"folder {Path(references).resolve()}"
        if not test:
            raise WorkbenchError(f"{references}: no photos to use as test references.")
    elif likeness is not None:
        test = likeness.split("test")
        facts.update(references=f"test split of {likeness.path}",
                     test_shares_shoot_with_train=likeness.test_shares_shoot_with_train)
        if not test:
            reasons["test"] = likeness.card.get("split_note") or "the likeness has no test photos"
    else:
        test = []
        reasons["test"] = "no test photos: a base-model run needs --references DIR or a likeness to take them from"
    if not train:
        reasons["train"] = "no training photos known for this run"
    for path in [*test, *train]:
        if not path.is_file():
            raise WorkbenchError(f"reference photo {path} is missing; it was part of the likeness's splits. Restore "
                                 "it, or score against a folder with --references DIR.")
    return test, train, reasons, facts


def score(run: str | os.PathLike, references: str | os.PathLike | None = None,
          recognizers: str | list[str] = "auto", clip_model: str | None = DEFAULT_CLIP,
          fid_reference: str | os.PathLike | None = None, progress: bool = True,
          likeness=None, lpips: str | None = "alex", fmr: float = 1e-3, settings=None,
          clip_iqa_model: str | None = "clip_iqa") -> pd.DataFrame:
    """Score a generation run; writes ``scores.parquet`` into the run and returns it.

    Identity is measured against the likeness's **test** photos only (never trained on, never used to
    choose the checkpoint), or against a ``references`` folder. ``likeness`` names whose split to use
    when the run is not that likeness's own (a base-model arm scored on the same test photos).
    ``recognizers``: a name, a list, or ``all``. FID/KID need ``fid_reference``, a folder of real photos
    you name (the person's own selfies are not a reference distribution)."""
    from ..faces import available_recognizers

    run = Path(run)
    if not (run / IMAGES).is_file():
        raise WorkbenchError(f"{run}: not a generation run (no images.parquet). Run `workbench generate` first.")
    images = read_images(run)
    names = recognizers if isinstance(recognizers, list) else [recognizers]
    names = available_recognizers() if names == ["all"] else names
    test_files, train_files, reasons, facts = reference_files(run, references, likeness)
    from ..config import Settings
    from ..faces.calibration import match_threshold

    settings = settings or Settings()
    clip_model_obj = ClipModel(clip_model)
    clip = ClipScorer(clip_model_obj, iqa_model=clip_iqa_model if clip_iqa_model != clip_model else clip_model_obj)
    lpips_model = LpipsModel(lpips) if not isinstance(lpips, LpipsModel) else lpips
    items = images.to_dict("records")
    tables, recognizer_facts = [], {}
    for index, name in enumerate(names):
        analyzer = get_analyzer(name)
        test, notes = reference_faces(analyzer, test_files)
        training, _ = reference_faces(analyzer, train_files)
        if test_files and not test:
            reasons["test"] = "no face found in any test photo: " + "; ".join(notes)
        threshold = match_threshold(analyzer, fmr, settings.home)
        recognizer_facts[name] = {"resolved": f"{analyzer.name} ({analyzer.version})",
                                  "model_sha256": analyzer.model_hash, "match_threshold": threshold[0],
                                  "calibration": threshold[1]}
        tables.append(score_images(items, run, test, training, analyzer, clip, progress, quality=index == 0,
                                   reasons=reasons, threshold=threshold, lpips=lpips_model))
        tables.append(real_gap_rows(analyzer, test_files, test, training))
    real = list_images(fid_reference) if fid_reference else []
    tables.append(distribution_rows(items, run, real, clip_model_obj,
                                    None if fid_reference else "no --fid-reference folder given: FID/KID need a "
                                    "reference set you name"))
    table = pd.concat(tables, ignore_index=True)
    table["test_shares_shoot_with_train"] = facts["test_shares_shoot_with_train"]
    write_table(table, run / SCORES)
    manifest = read_manifest(run)
    if manifest is not None:
        manifest.outputs["scores"] = {"file": SCORES, **facts, "recognizers": recognizer_facts,
                                      "lpips_backbone": lpips_model.name, "fmr": fmr}
        write_manifest(run, manifest)
    return table
