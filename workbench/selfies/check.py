"""``check_selfies``: per-photo checks, then set checks, then a saved, resumable report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..artifacts import CHECK_JSON, CHECK_TABLE
from ..errors import WorkbenchError
from ..images import folder_entries, list_images
from ..store import Manifest, atomic_write_json, write_manifest, write_table
from .photo import PhotoCheck, finish_photo, read_photo
from .setcheck import find_duplicates, find_intruders, pose_coverage, variety, verdict
from .thresholds import DEFAULT_THRESHOLDS, Thresholds

FACE_BATCH = 16  # photos decoded and analysed together: bounded memory (16 x 2000 px), every core busy


@dataclass
class CheckReport:
    folder: Path
    photos: list[PhotoCheck]
    set: dict[str, Any] = field(default_factory=dict)
    recognizer: str = ""

    @property
    def verdict(self) -> str:
        return self.set["verdict"]

    @property
    def training_files(self) -> list[Path]:
        return [self.folder / name for name in self.set["training_files"]]

    def table(self) -> pd.DataFrame:
        """One row per photo: file, status, flags (comma-joined), advice, and one column per score."""
        rows = []
        for photo in self.photos:
            row = {"file": photo.file, "status": photo.status, "flags": ",".join(photo.flags),
                   "advice": " ".join(photo.advice)}
            row.update({f"score_{k}": v for k, v in photo.scores.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def as_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "recognizer": self.recognizer,
                "photos": [p.as_dict() for p in self.photos], "set": self.set}

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        atomic_write_json(directory / CHECK_JSON, self.as_dict())
        write_table(self.table(), directory / CHECK_TABLE)
        return directory


def find_faces(path: str | os.PathLike, analyzer, thresholds: Thresholds | None = None) -> dict[str, list]:
    """The faces ``check_selfies`` finds in one photo, keyed as the analyzer caches them: a parallel executor
    spreads a set's face analysis over its workers this way, and the process that then checks the set
    adopts them (``analyzer.learn``) instead of analysing again. Empty for a photo the check refuses."""
    _, image = read_photo(Path(path), thresholds or DEFAULT_THRESHOLDS)
    if image is None:
        return {}
    analyzer.analyze_many([image])
    return analyzer.known([image])


def check_selfies(folder: str | os.PathLike, analyzer=None, thresholds: Thresholds | None = None,
                  out: str | os.PathLike | None = None, progress: bool = True) -> CheckReport:
    """Check every photo in ``folder`` and the set as a whole. With ``out``, save the report there
    (``check.json``, ``photos.parquet``, ``manifest.json``)."""
    from ..faces import get_analyzer

    folder = Path(folder)
    if not folder.is_dir():
        raise WorkbenchError(f"{folder}: not a folder of photos. Pass the folder that holds your selfies.")
    files = folder_entries(folder)  # photos, and whatever else is there: every entry gets a card
    if not list_images(folder):
        raise WorkbenchError(f"{folder}: no photos found (looked for .jpg .jpeg .png .webp .heic .tif .bmp).")
    analyzer = analyzer or get_analyzer()
    limits = thresholds or DEFAULT_THRESHOLDS
    started = time.perf_counter()
    # 1. per photo: a bad file is a failed row, never an exception; faces are found a batch at a time
    # through the backend's batch entry (every core for dlib, one session call for ArcFace)
    photos = []
    with tqdm(total=len(files), desc="checking photos", disable=not progress, unit="photo") as bar:
        for start in range(0, len(files), FACE_BATCH):
            read = [read_photo(path, limits) for path in files[start:start + FACE_BATCH]]
            found = iter(analyzer.analyze_many([image for _, image in read if image is not None]))
            photos += [result if image is None else finish_photo(result, image, next(found), limits)
                       for result, image in read]
            bar.update(len(read))
    # 2. set checks
    duplicates = find_duplicates(photos, analyzer, limits)
    intruders = find_intruders(photos, analyzer, limits)
    coverage = pose_coverage(photos)
    varied = variety(photos, limits)
    # 3. verdict
    outcome, training, advice = verdict(photos, limits)
    report = CheckReport(folder=folder, photos=photos, recognizer=f"{analyzer.name} ({analyzer.version})", set={
        # count: every file given; photos: those that are photos (a PDF beside them is not)
        "verdict": outcome, "count": len(photos), "photos": sum("unreadable" not in p.flags for p in photos),
        "usable": len(training), "training_files": training,
        "duplicates": duplicates, "intruders": intruders, "pose_coverage": coverage, "variety": varied,
        "advice": advice + coverage["advice"] + varied["advice"],
    })
    # 4. save
    if out is not None:
        report.save(out)
        write_manifest(out, check_manifest(report, files, Path(out), limits, time.perf_counter() - started))
    return report


def check_manifest(report: CheckReport, files: list[Path], base: Path, limits: Thresholds | None = None,
                   seconds: float | None = None) -> Manifest:
    """A check's record: the set by content (every photo's sha256) and a link to it, so deleting the set
    deletes the check (its thumbnails and findings are the person's). ``base``: where links start from."""
    from ..lineage import link, photo_hashes

    return Manifest(kind="check", status="done",
                    inputs={"folder": str(report.folder.resolve()), "files": [p.name for p in files],
                            "set_sha256": photo_hashes(report.folder)},
                    links={"selfies": link(report.folder, base)},
                    config=(limits or DEFAULT_THRESHOLDS).model_dump(),
                    timings={"seconds": seconds} if seconds is not None else {},
                    outputs={"verdict": report.set["verdict"], "recognizer": report.recognizer})


def save_check_file(report: CheckReport, path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """The check as one file: JSON (``.json``) or a self-contained HTML page with thumbnails (otherwise).
    Inside ``workspace`` it gets a ``<file>.manifest.json`` linking it to the set, so deleting the set deletes
    it too (its thumbnails are the person's); outside, the file is the user's own and nothing is added."""
    from ..names import inside
    from ..retention import write_sidecar
    from ..store import atomic_write_json
    from .html import write_html

    path = Path(path)
    if path.suffix.lower() == ".json":
        atomic_write_json(path, report.as_dict())
    else:
        write_html(report, path)
    if workspace is not None:
        try:
            inside(workspace, path)
        except WorkbenchError:
            return path
        write_sidecar(path, check_manifest(report, folder_entries(report.folder), path.parent))
    return path
