"""The chain, written once: check -> train -> generate -> score (-> the base-model arm) -> report.

``workbench demo``, QA suites and upload-quality study cells are this function with different options;
the CLI, the app and the notebooks reach it through the public API. Every stage resumes from its folder,
so a rerun only does what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Settings
from .faces import get_analyzer
from .generate import GenerationRun, generate
from .likeness import Likeness, train_likeness
from .metrics import score
from .selfies import CheckReport, check_selfies


@dataclass
class ChainResult:
    check: CheckReport
    likeness: Likeness
    run: GenerationRun
    scores: pd.DataFrame
    baseline_run: GenerationRun | None = None
    baseline_scores: pd.DataFrame | None = None


def run_chain(selfies: str | os.PathLike, likeness_dir: str | os.PathLike, run_dir: str | os.PathLike, *,
              family: str = "tiny-sd", base: str | None = None, settings: Settings | None = None,
              train: dict[str, Any] | None = None, packs: Sequence[str] = ("corporate-headshot",),
              samplers: Sequence[str] | None = None, steps: Sequence[int] | None = None,
              seeds: Sequence[int] = (0, 1), guidance: float | None = None, prompts_per_pack: int | None = None,
              recognizers: Sequence[str] = ("auto",), clip_model: str | None = None,
              references: str | os.PathLike | None = None, check_dir: str | os.PathLike | None = None,
              baseline_dir: str | os.PathLike | None = None, progress: bool = True,
              callback=None) -> ChainResult:
    """Check the selfies once, train (or resume) the likeness, render the grid, score it against the
    likeness's test photos (or ``references``); with ``baseline_dir`` also render and score the base
    model alone on the same grid against the same test photos. ``callback(done, total, unit=...)`` hears
    the training steps and the images, as in ``train_likeness`` and ``generate`` (a job's cancel point)."""
    settings = settings or Settings()
    analyzer = get_analyzer(recognizers[0])
    # 1. check (once: the trainer takes this report)
    report = check_selfies(selfies, analyzer=analyzer, out=check_dir, progress=progress)
    # 2. train
    likeness = train_likeness(selfies, likeness_dir, family=family, base=base, settings=settings, analyzer=analyzer,
                              progress=progress, report=report, callback=callback, **(train or {}))
    # 3. generate
    grid = dict(samplers=samplers, steps=steps, seeds=seeds, guidance=guidance, prompts_per_pack=prompts_per_pack,
                settings=settings, progress=progress, callback=callback)
    run = generate(likeness, list(packs), run_dir, **grid)
    # 4. score
    scoring = dict(recognizers=list(recognizers), clip_model=clip_model, progress=progress, settings=settings)
    scores = score(run.path, references=references, **scoring)
    result = ChainResult(report, likeness, run, scores)
    # 5. the base model on the same grid, scored against the same test photos
    if baseline_dir is not None:
        result.baseline_run = generate(None, list(packs), baseline_dir, family=family, base=base, **grid)
        result.baseline_scores = score(result.baseline_run.path, references=references, likeness=likeness, **scoring)
    return result


def chain_folders(home: str | os.PathLike, name: str) -> dict[str, Path]:
    """Where a named chain keeps its stages in a workspace."""
    from .store import Workspace

    workspace = Workspace(home)
    return {"likeness_dir": workspace.area("likenesses") / name, "run_dir": workspace.area("runs") / name,
            "check_dir": workspace.area("selfie-sets") / name / "check"}
