"""``score(run)``: one row per image x metric (plus Face-Div rows per prompt group), saved as Parquet. What is
computed is what the metric registry names: each metric's producer (``producers.py``) runs at its level.

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
from ..interrupts import check_stop
from ..likeness.card import Likeness
from ..store import read_manifest, write_manifest, write_table
from .clip import DEFAULT_CLIP, ClipModel, ClipScorer
from .lpips import LpipsModel, aligned_crop, detected_crop
from .producers import GroupContext, ImageContext, RunContext
from .registry import planned

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
    """Per image, then per prompt group, the rows of every producer the registered metrics name
    (``producers.planned``): identity (with the recognizer named) always; image quality, CLIP metrics and
    PhotoMaker's Face-Div only with ``quality`` (once per run, not per recognizer). ``reasons`` says why
    references are missing; ``threshold`` is the recognizer's calibrated match threshold and its note."""
    recognizer = f"{analyzer.name} ({analyzer.version})"
    reasons = reasons or {}
    test_reason, train_reason = reasons.get("test", "no test face"), reasons.get("train", "no training face")
    why = {"test_facesim": test_reason, "test_facesim_max": test_reason, "train_facesim": train_reason,
           "nearest_train_facesim": train_reason, "copy_paste_gap": test_reason if not test else train_reason,
           "id_match_rate": test_reason if not test else threshold[1]}
    rank = 0 if quality else 1  # from the second recognizer on, only what runs per recognizer
    image_producers, group_producers = planned("image", rank), planned("group", rank)
    crops_wanted = lpips is not None and lpips.net is not None and any(p.name == "face_div"
                                                                       for p in group_producers)
    rows, groups = [], {}
    for item, image, faces in tqdm(_with_faces(analyzer, items, root), total=len(items), unit="img",
                                   desc=f"scoring ({analyzer.name})", disable=not progress):
        check_stop()
        base = {k: item.get(k) for k in ("image_id", *GROUP, "seed", "family")}
        context = ImageContext(base, item, image, faces, analyzer, recognizer, test, training, threshold, why, clip,
                               load=lambda path: load_image(root / path))
        for producer in image_producers:
            rows += producer.compute(context)
        key = tuple(item.get(k) for k in GROUP)
        group = groups.setdefault(key, GroupContext(
            {**dict(zip(GROUP, key, strict=True)), "image_id": None, "seed": None, "family": items[0].get("family")},
            analyzer=analyzer, recognizer=recognizer, lpips=lpips))
        if faces:
            group.faces.append(faces[0])
            if crops_wanted:
                group.crops.append(aligned_crop(image, faces[0]))
                group.detected_crops.append(detected_crop(image, faces[0]))
    for key in sorted(groups, key=str):
        for producer in group_producers:
            rows += producer.compute(groups[key])
    return _frame(rows)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["value"] = frame["value"].astype(float)
    return frame


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
        from ..store import read_manifest as manifest_of

        trained = manifest_of(likeness.path)
        selfies = trained.inputs.get("selfies") if trained else None
        if selfies:  # who is evaluated: a calibration that includes them cannot set their threshold
            facts["people"] = [Path(selfies).name]
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
    real = list_images(fid_reference) if fid_reference else []
    for index, name in enumerate(names):
        analyzer = get_analyzer(name)
        test, notes = reference_faces(analyzer, test_files)
        training, _ = reference_faces(analyzer, train_files)
        if test_files and not test:
            reasons["test"] = "no face found in any test photo: " + "; ".join(notes)
        evaluated = set(facts["people"]) if facts.get("people") else None
        threshold = match_threshold(analyzer, fmr, settings.home, evaluated=evaluated)
        recognizer_facts[name] = {"resolved": f"{analyzer.name} ({analyzer.version})",
                                  "model_sha256": analyzer.model_hash, "match_threshold": threshold[0],
                                  "calibration": threshold[1]}
        tables.append(score_images(items, run, test, training, analyzer, clip, progress, quality=index == 0,
                                   reasons=reasons, threshold=threshold, lpips=lpips_model))
        context = RunContext(items, lambda path: load_image(run / path), analyzer, f"{analyzer.name} "
                             f"({analyzer.version})", test_files, test, training, clip_model_obj, real,
                             None if fid_reference else "no --fid-reference folder given: FID/KID need a reference "
                             "set you name")
        for producer in planned("run", index):
            tables.append(_frame(producer.compute(context)))
    table = pd.concat(tables, ignore_index=True)
    table["test_shares_shoot_with_train"] = facts["test_shares_shoot_with_train"]
    write_table(table, run / SCORES)
    manifest = read_manifest(run)
    if manifest is not None:
        manifest.outputs["scores"] = {"file": SCORES, **facts, "recognizers": recognizer_facts,
                                      "lpips_backbone": lpips_model.name, "fmr": fmr}
        write_manifest(run, manifest)
    return table
