"""What computes each metric. A producer is one function at one level (per image, per prompt group, per run)
that emits one or more registered metrics; every ``Metric`` in ``registry.py`` names its producer, and
``score`` runs the producers its registered metrics name, in registry order (``registry.planned``). A metric
whose producer does not exist, or a producer that emits an unregistered metric, is an error a test catches;
a metric the scorer never produces cannot be registered unnoticed.

Producers at the ``study`` level (seconds per image, peak GPU memory, what the upload gate said) run in the
study kinds, which own the timings and the gate; they are listed here so that every metric has a producer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .identity import IDENTITY_METRICS, identity_spread, image_identity, real_copy_paste_gaps

Level = Literal["image", "group", "run", "study"]


@dataclass(frozen=True)
class Producer:
    name: str
    level: Level
    emits: tuple[str, ...]
    compute: Callable[..., list[dict[str, Any]]] | None  # None: computed by a study kind (level "study")
    per_recognizer: bool = False  # runs once per recognizer (identity); else once per run (quality)


@dataclass
class ImageContext:
    """What an image-level producer sees: the image, its faces, the references and the scoring models."""

    base: dict[str, Any]  # the image's row keys (image_id, pack, prompt_id, sampler, steps, ...)
    item: dict[str, Any]
    image: Any
    faces: list
    analyzer: Any
    recognizer: str
    test: list
    training: list
    threshold: tuple[float | None, str]
    why: dict[str, str]  # why an identity value is missing when a face was found
    clip: Any
    load: Callable[[str], Any]  # a path of the run -> its image


@dataclass
class GroupContext:
    """A prompt group's faces and aligned crops, gathered while its images were scored."""

    group: dict[str, Any]
    faces: list = field(default_factory=list)
    crops: list = field(default_factory=list)  # ArcFace-aligned face crops
    detected_crops: list = field(default_factory=list)  # the detector's face boxes
    analyzer: Any = None
    recognizer: str = ""
    lpips: Any = None


def _identity(ctx: ImageContext) -> list[dict[str, Any]]:
    rows = []
    for metric, value in image_identity(ctx.analyzer, ctx.faces, ctx.test, ctx.training, ctx.threshold[0]).items():
        reason = None
        if value is None:
            reason = "no face detected" if not ctx.faces else ctx.why.get(metric, "not computable")
        rows.append({**ctx.base, "metric": metric, "value": value, "reason": reason, "recognizer": ctx.recognizer,
                     "note": ctx.threshold[1] if metric == "id_match_rate" and value is not None else None})
    return rows


def _before_detailer(ctx: ImageContext) -> list[dict[str, Any]]:
    """The same image before the face detailer, against the same references."""
    if not (ctx.item.get("before_path") and ctx.test):
        return []
    before = ctx.analyzer.analyze(ctx.load(ctx.item["before_path"]))
    value = image_identity(ctx.analyzer, before, ctx.test, ctx.training)["test_facesim"]
    return [{**ctx.base, "metric": "test_facesim_before_detailer", "value": value, "recognizer": ctx.recognizer,
             "reason": None if value is not None else "no face detected before the detailer"}]


def _no_reference(ctx: ImageContext) -> list[dict[str, Any]]:
    from .quality import no_reference

    region = "face" if ctx.faces else "image"
    return [{**ctx.base, "metric": m, "value": v, "reason": None, "recognizer": None, "region": region}
            for m, v in no_reference(ctx.image, ctx.faces[0] if ctx.faces else None).items()]


def _clip_score(ctx: ImageContext) -> list[dict[str, Any]]:
    value = ctx.clip.score(ctx.image, ctx.item.get("prompt_plain") or ctx.item.get("prompt") or "")
    return [{**ctx.base, "metric": "clip_score", "value": value, "recognizer": None,
             "reason": None if value is not None else (ctx.clip.unavailable or "no prompt")}]


def _clip_iqa(ctx: ImageContext) -> list[dict[str, Any]]:
    return [{**ctx.base, "metric": metric, "value": value, "recognizer": None,
             "reason": None if value is not None else ctx.clip.iqa_unavailable}
            for metric, value in ctx.clip.iqa(ctx.image).items()]


def _identity_spread(ctx: GroupContext) -> list[dict[str, Any]]:
    spread = identity_spread(ctx.analyzer, ctx.faces)
    return [{**ctx.group, "metric": "identity_spread", "value": spread, "recognizer": ctx.recognizer,
             "reason": None if spread is not None else "fewer than two faces in this prompt group"}]


def _face_div(ctx: GroupContext) -> list[dict[str, Any]]:
    """Face-Div twice, each named for what it compares: PhotoMaker's (LPIPS between the detected face regions,
    Li et al. 2024) and the aligned variant (LPIPS between ArcFace-aligned crops: pose, expression and light
    without position and scale). The two are not comparable with each other."""
    from .lpips import face_div_lpips

    if ctx.lpips is None:
        return []
    rows = []
    for metric, crops in (("face_div_photomaker", ctx.detected_crops), ("face_div_aligned", ctx.crops)):
        div = face_div_lpips(ctx.lpips, crops)
        rows.append({**ctx.group, "metric": metric, "value": div, "recognizer": None, "region": "face",
                     "reason": None if div is not None else ctx.lpips.unavailable or "fewer than two faces in this "
                     "prompt group"})
    return rows


@dataclass
class RunContext:
    """What a run-level producer sees: the run's images, the reference photos and their faces."""

    items: list[dict[str, Any]]
    load: Callable[[str], Any]
    analyzer: Any = None
    recognizer: str = ""
    test_files: list = field(default_factory=list)
    test: list = field(default_factory=list)
    training: list = field(default_factory=list)
    clip_model: Any = None
    fid_reference: list = field(default_factory=list)  # photos of a reference distribution, for FID/KID
    fid_missing: str | None = None  # why FID/KID are not computed (no reference folder given)


def _real_gaps(ctx: RunContext) -> list[dict[str, Any]]:
    """``copy_paste_gap_real``: the same gap for the real test photos (one row per test photo)."""
    gaps = real_copy_paste_gaps(ctx.analyzer, ctx.test, ctx.training)
    if not gaps:
        return [{"image_id": None, "photo": None, "metric": "copy_paste_gap_real", "value": None,
                 "recognizer": ctx.recognizer, "reason": "needs two test photos with a face and training photos"}]
    names = [p.name for p in ctx.test_files][:len(gaps)]
    return [{"image_id": None, "photo": name, "metric": "copy_paste_gap_real", "value": gap,
             "recognizer": ctx.recognizer, "reason": None} for name, gap in zip(names, gaps, strict=True)]


DISTRIBUTION_GROUP = ["sampler", "steps", "guidance"]


def _distribution(ctx: RunContext) -> list[dict[str, Any]]:
    """FID / KID on CLIP features per (sampler, steps, guidance) group against the reference photos."""
    import pandas as pd

    from ..images import ImageRefused, load_image
    from .clip import distribution_metrics

    references = []
    for path in ctx.fid_reference:
        try:
            references.append(load_image(path))
        except ImageRefused:
            continue
    rows = []
    for key, group in pd.DataFrame(ctx.items).groupby(DISTRIBUTION_GROUP, sort=True):
        if ctx.fid_missing:
            results = {m: (None, ctx.fid_missing) for m in ("fid_clip", "kid_clip", "kid_clip_std")}
        else:
            results = distribution_metrics([ctx.load(p) for p in group["path"]], references, ctx.clip_model)
        for metric, (value, reason) in results.items():
            rows.append({**dict(zip(DISTRIBUTION_GROUP, key, strict=True)), "pack": None, "prompt_id": None,
                         "image_id": None, "seed": None, "family": group["family"].iloc[0], "metric": metric,
                         "value": value, "reason": reason, "recognizer": None})
    return rows


PRODUCERS: dict[str, Producer] = {p.name: p for p in [
    Producer("identity", "image", IDENTITY_METRICS, _identity, per_recognizer=True),
    Producer("before_detailer", "image", ("test_facesim_before_detailer",), _before_detailer, per_recognizer=True),
    Producer("no_reference", "image", ("sharpness", "exposure"), _no_reference),
    Producer("clip_score", "image", ("clip_score",), _clip_score),
    Producer("clip_iqa", "image", ("clip_iqa_quality", "clip_iqa_sharpness", "clip_iqa_noisiness"), _clip_iqa),
    Producer("identity_spread", "group", ("identity_spread",), _identity_spread, per_recognizer=True),
    Producer("face_div", "group", ("face_div_photomaker", "face_div_aligned"), _face_div),
    Producer("real_copy_paste_gap", "run", ("copy_paste_gap_real",), _real_gaps, per_recognizer=True),
    Producer("distribution", "run", ("fid_clip", "kid_clip", "kid_clip_std"), _distribution),
    Producer("study_timing", "study", ("seconds_per_image", "peak_gpu_memory_gb"), None),
    Producer("upload_gate", "study", ("gate_flagged", "gate_failed", "gate_matching_flag", "gate_ready"), None),
]}
