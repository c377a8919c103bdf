"""The on-disk layout of every artifact, in one place: file names, the columns of the tidy tables, and
loaders. Stages read each other's outputs through this module, never through a string of their own.

```
<check>/        check.json, photos.parquet, manifest.json                (CheckReport)
<likeness>/     likeness.json, lora.safetensors, lora_kohya.safetensors, curve.parquet,
                checkpoints/step-NNNNNN/, validation/*.png, manifest.json (Likeness)
<run>/          images.parquet, <pack>/<prompt>-<sampler>-<steps>s-g<g>-seed<s>.png,
                scores.parquet, manifest.json                            (GenerationRun)
                favourites.json (image ids a person starred in the app)
<study>/        study.parquet, summary.parquet, comparisons.parquet, section-N.parquet,
                cells/<identity>/r<replicate>/<cell>/{scores.parquet, manifest.json}, report/,
                inputs/<identity>/split.json (upload-quality: the original photos' paths and sha256;
                a cell copies the photos it needs into its folder while it runs and removes them after)
```
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .store import MANIFEST  # noqa: F401 (re-exported: one name for the stage record)

CHECK_JSON, CHECK_TABLE = "check.json", "photos.parquet"
CARD_FILE, LORA_FILE, KOHYA_FILE, CURVE = "likeness.json", "lora.safetensors", "lora_kohya.safetensors", "curve.parquet"
IMAGES, SCORES, FAVOURITES = "images.parquet", "scores.parquet", "favourites.json"
STUDY_TABLE, STUDY_SUMMARY, STUDY_COMPARISONS = "study.parquet", "summary.parquet", "comparisons.parquet"

# The tidy tables' columns (a row may carry more: cell parameters, region, photo, note).
IMAGE_COLUMNS = ("image_id", "pack", "prompt_id", "prompt", "prompt_plain", "sampler", "steps", "seed", "guidance",
                 "width", "height", "path", "seconds", "family", "likeness", "arm", "ip_scale", "detailer",
                 "before_path")
SCORE_COLUMNS = ("image_id", "pack", "prompt_id", "sampler", "steps", "guidance", "seed", "family", "metric", "value",
                 "reason", "recognizer")


def is_run(folder: str | os.PathLike) -> bool:
    return (Path(folder) / IMAGES).is_file()


def is_likeness(folder: str | os.PathLike) -> bool:
    return (Path(folder) / CARD_FILE).is_file()


def has_scores(folder: str | os.PathLike) -> bool:
    return (Path(folder) / SCORES).is_file()


def read_parquet_checked(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A table the workbench wrote, or an ``ArtifactError`` naming the file when it is damaged or is not
    the table its name says (missing columns)."""
    from .errors import ArtifactError

    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise ArtifactError(f"{path}: not a readable table ({type(exc).__name__}); remove it and run the stage "
                            "again, or restore it.") from None
    missing = [c for c in columns if c not in table]
    if missing:
        raise ArtifactError(f"{path}: not a table of {what} (no column {', '.join(missing)}); remove it and run the "
                            "stage again.")
    return table


def read_images(run: str | os.PathLike) -> pd.DataFrame:
    """A run's image table; every image path stays inside the run (a hand-made table may name any file)."""
    from .errors import ArtifactError

    path = Path(run) / IMAGES
    table = read_parquet_checked(path, ("image_id", "path", "pack", "sampler", "steps", "seed"), "generated images")
    unsafe = [p for p in table["path"].astype(str) if Path(p).is_absolute() or ".." in Path(p).parts]
    if unsafe:
        raise ArtifactError(f"{path}: image path {unsafe[0]!r} leaves the run folder; this table was not written by "
                            "the workbench.")
    return table


def read_scores(run: str | os.PathLike) -> pd.DataFrame | None:
    """A run's ``scores.parquet`` (one row per image x metric), or None before it is scored."""
    path = Path(run) / SCORES
    return read_parquet_checked(path, ("image_id", "metric", "value"), "scores") if path.is_file() else None


def _read_json(path: Path, kind: type, what: str):
    import json

    from .errors import ArtifactError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path}: not readable as {what} ({type(exc).__name__}); remove or restore it.") from None
    if not isinstance(data, kind):
        raise ArtifactError(f"{path}: not {what} (a JSON {kind.__name__} was expected); remove it or restore it.")
    return data


def read_favourites(run: str | os.PathLike) -> list[str]:
    """The image ids starred in the app, in the order they were starred."""
    path = Path(run) / FAVOURITES
    return [str(i) for i in _read_json(path, list, "a list of favourites")] if path.is_file() else []


def toggle_favourite(run: str | os.PathLike, image_id: str) -> bool:
    """Star ``image_id`` of ``run`` (or unstar it); returns whether it is now a favourite. Only ids of the
    run's own images are accepted; the file is written atomically."""
    from .errors import ConfigError
    from .store import atomic_write_json

    if image_id not in set(read_images(run)["image_id"]):
        raise ConfigError(f"{image_id!r} is not an image of run {Path(run).name}.")
    starred = read_favourites(run)
    now_starred = image_id not in starred
    starred = [*starred, image_id] if now_starred else [i for i in starred if i != image_id]
    atomic_write_json(Path(run) / FAVOURITES, starred)
    return now_starred


def read_check(check_dir: str | os.PathLike) -> dict | None:
    """A saved check (``check.json``) as data: verdict, per-photo flags and advice."""
    path = Path(check_dir) / CHECK_JSON
    return _read_json(path, dict, "a selfie check") if path.is_file() else None
