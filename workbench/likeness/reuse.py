"""Whether a likeness folder may take a training: the same photos (by content) and settings resume or return
it; anything else is a list of what differs, which ``train_likeness`` refuses (or, with ``replace``, clears)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WorkbenchError
from ..lineage import describe_changes, describe_photo_change, photo_hashes
from ..store import Manifest, read_manifest
from .checkpoints import RESUMABLE_CHANGES
from .config import TrainConfig


def reuse_check(out: str | os.PathLike, selfies: str | os.PathLike,
                config: TrainConfig) -> tuple[Manifest | None, list[str]]:
    """The folder's manifest and what differs between the likeness it holds and the one asked for (empty:
    the folder may be resumed or returned). The app asks this before it queues a training."""
    if not Path(selfies).is_dir():
        raise WorkbenchError(f"{selfies}: not a folder of photos. Pass the folder that holds your selfies.")
    manifest = read_manifest(out)
    if manifest is not None and manifest.kind != "likeness":
        raise ConfigError(f"{out} holds a {manifest.kind}, not a likeness; train into another --out.")
    if manifest is None:
        return None, []
    return manifest, likeness_differences(manifest, photo_hashes(selfies), config)


def training_conflicts(out: str | os.PathLike, selfies: str | os.PathLike, family: str = "tiny-sd",
                       **options: Any) -> list[str]:
    """What ``train_likeness(selfies, out, family, **options)`` would refuse, checked without training: a bad
    or out-of-bounds option raises ``ConfigError``; the list says what differs from the likeness already in
    ``out`` (empty: ``out`` is new, or holds this likeness to resume or return)."""
    return reuse_check(out, selfies, TrainConfig.parse(family, **options))[1]


def likeness_differences(manifest: Manifest, photos: dict[str, str], config: TrainConfig) -> list[str]:
    """What differs between the likeness (finished or not) a folder's manifest records and the one asked
    for: its photos by content, and every setting given explicitly (memory settings may change)."""
    differences = []
    recorded = manifest.inputs.get("set_sha256")
    if recorded is None and manifest.inputs.get("photo_sha256"):  # written before set hashes: its training photos
        trained = set(manifest.inputs["photo_sha256"].values())
        if not trained <= set(photos.values()):
            differences.append(f"other photos ({len(trained - set(photos.values()))} of its training photos are "
                               "not among these)")
    elif recorded is not None and (change := describe_photo_change(photos, recorded)):
        differences.append(change)
    if manifest.config:
        asked = {k: v for k, v in config.model_dump().items()
                 if k in config.model_fields_set and v is not None and k not in RESUMABLE_CHANGES}
        differences += describe_changes(asked, manifest.config)
    return differences
