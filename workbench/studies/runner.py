"""Run a study cell by cell.

*sampler-steps*: one likeness, then one cell per (sampler, steps): render the packs x seeds, score.
*upload-quality*: the clean set is split once into reference photos (never trained on, by anyone) and a
pool; each cell degrades the pool (kind x strength), checks it with the upload gate, trains a likeness
with the same seed and config, renders the same probe grid and scores it against the references. The
summary puts "what the gate said" (share of photos flagged) next to "what it cost" (Δ FaceSim vs the
clean cell, paired on prompt and seed, with a bootstrap CI). Cells train on every readable photo whatever
the gate said (``ignore_gate``), so the cost of what the gate would refuse is measured too.

A cell is done when its ``manifest.json`` says so; a rerun skips done cells. With ``shard=(i, n)`` a
process runs cells i, i+n, ...; any process assembles the table once every cell is done.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..errors import ConfigError
from ..faces import get_analyzer
from ..generate import generate
from ..images import list_images
from ..likeness import train_likeness
from ..metrics import paired_difference, score, summarize
from ..models import get_family
from ..selfies import check_selfies
from ..selfies.degrade import degrade_set
from ..store import Manifest, is_done, read_table, write_manifest, write_table
from .plots import sampler_steps_plot, upload_quality_plot
from .spec import StudySpec, load_spec

TABLE, SUMMARY = "study.parquet", "summary.parquet"
REFERENCE_PHOTOS = 2
# The degradation a check is meant to catch, for the "what the gate said" column.
MATCHING_FLAG = {"blur": "blurry", "downscale": "blurry", "darken": "too_dark", "overexpose": "too_bright",
                 "beauty": "beauty_filter", "occlusion": "sunglasses", "duplicates": "duplicate",
                 "intruder": "different_person", "noise": None, "jpeg": None, "fewer": None}


@dataclass
class Cell:
    id: str
    params: dict[str, Any]


def plan_cells(spec: StudySpec) -> list[Cell]:
    fam = get_family(spec.family)
    if spec.kind == "sampler-steps":
        samplers, steps = spec.samplers or [fam.sampler], spec.steps or [fam.steps]
        return [Cell(f"{s}-{n}", {"sampler": s, "steps": n}) for s in samplers for n in steps]
    if not spec.degradations:
        raise ConfigError(f"{spec.source}: an upload-quality study needs a 'degradations' list.")
    return [Cell("clean", {"kind": "clean", "strength": 0.0})] + [
        Cell(d.id, {"kind": d.kind, "strength": d.strength, "fraction": d.fraction}) for d in spec.degradations]


def parse_shard(text: str | None) -> tuple[int, int]:
    """``i/n`` (0-based), or accelerate's process index and count when launched with it."""
    if text:
        index, _, count = text.partition("/")
        shard = (int(index), int(count or 1))
    else:
        shard = (int(os.environ.get("RANK", os.environ.get("PROCESS_INDEX", 0))),
                 int(os.environ.get("WORLD_SIZE", os.environ.get("NUM_PROCESSES", 1))))
    if not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"shard {text!r}: expected i/n with 0 <= i < n")
    return shard


def run_study(spec: StudySpec | str | os.PathLike, out: str | os.PathLike, settings: Settings | None = None,
              shard: tuple[int, int] = (0, 1), progress: bool = True) -> Path:
    """Run (or resume) the study into ``out``; returns ``out``. The report is written once all cells are done."""
    spec = spec if isinstance(spec, StudySpec) else load_spec(spec)
    settings = settings or Settings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = plan_cells(spec)
    manifest = Manifest(kind="study", status="running", inputs={"spec": spec.source, "selfies": spec.selfies},
                        config=spec.model_dump(), seeds=list(spec.seeds), outputs={"cells": [c.id for c in cells]})
    if shard[0] == 0 and not is_done(out):
        write_manifest(out, manifest)
    shared = prepare_shared(spec, out, settings, progress, leader=shard[0] == 0)
    for cell in cells[shard[0]::shard[1]]:
        folder = out / "cells" / cell.id
        if is_done(folder):
            continue
        started = time.perf_counter()
        run_cell(spec, cell, folder, shared, settings, progress)
        write_manifest(folder, Manifest(kind="study-cell", status="done", config=cell.params, seeds=list(spec.seeds),
                                        timings={"seconds": time.perf_counter() - started}))
    if all(is_done(out / "cells" / c.id) for c in cells):
        assemble(spec, cells, out, manifest)
    return out


def _wait_for(ready, what: str, timeout: float = 6 * 3600) -> None:
    """Non-leader shards wait for the leader to build what all cells share."""
    waited = 0.0
    while not ready():
        if waited > timeout:
            raise ConfigError(f"gave up waiting for shard 0 to prepare {what}; is shard 0 running?")
        time.sleep(5)
        waited += 5


def prepare_shared(spec: StudySpec, out: Path, settings: Settings, progress: bool,
                   leader: bool = True) -> dict[str, Any]:
    """What every cell shares: the likeness (sampler-steps) or the reference/pool split (upload-quality).
    Shard 0 builds it; the other shards wait for it."""
    selfies = spec.path(spec.selfies)
    if not leader:
        _wait_for(lambda: is_done(out / "likeness") or (out / "pool" / ".complete").is_file(), "the shared inputs")
    if spec.kind == "sampler-steps":
        likeness = train_likeness(selfies, out / "likeness", family=spec.family, base=spec.base, settings=settings,
                                  analyzer=get_analyzer(spec.recognizers[0]), progress=progress, **spec.train)
        return {"likeness": likeness}
    references, pool = out / "references", out / "pool"
    if not (pool / ".complete").is_file():
        files = list_images(selfies)
        held = set(random.Random(0).sample(files, min(REFERENCE_PHOTOS, max(0, len(files) - 3))))
        for folder in (references, pool):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        for path in files:
            shutil.copyfile(path, (references if path in held else pool) / path.name)
        (pool / ".complete").write_text("")
    return {"references": references, "pool": pool}


def run_cell(spec: StudySpec, cell: Cell, folder: Path, shared: dict[str, Any], settings: Settings,
             progress: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if spec.kind == "sampler-steps":
        run = generate(shared["likeness"], spec.packs, folder / "run", samplers=[cell.params["sampler"]],
                       steps=[cell.params["steps"]], seeds=spec.seeds, guidance=spec.guidance,
                       prompts_per_pack=spec.prompts_per_pack, settings=settings, progress=progress)
        table = score(run.path, recognizers=spec.recognizers, clip_model=spec.clip_model, progress=progress)
        table = pd.concat([table, seconds_rows(run.table)], ignore_index=True)
    else:
        selfies = shared["pool"]
        if cell.params["kind"] != "clean":
            selfies = folder / "selfies"
            if not (selfies / "manifest.json").is_file():
                shutil.rmtree(selfies, ignore_errors=True)
                others = spec.path(spec.others) if spec.others else None
                degrade_set(shared["pool"], selfies, cell.params["kind"], cell.params["strength"], seed=0,
                            fraction=cell.params.get("fraction", 1.0), others=others)
        analyzer = get_analyzer(spec.recognizers[0])
        report = check_selfies(selfies, analyzer=analyzer, out=folder / "check", progress=progress)
        likeness = train_likeness(selfies, folder / "likeness", family=spec.family, base=spec.base,
                                  settings=settings, analyzer=analyzer, progress=progress,
                                  **{"held_out": 0, "ignore_gate": True, **spec.train})
        run = generate(likeness, spec.packs, folder / "run", samplers=spec.samplers, steps=spec.steps,
                       seeds=spec.seeds, guidance=spec.guidance, prompts_per_pack=spec.prompts_per_pack,
                       settings=settings, progress=progress)
        table = score(run.path, references=shared["references"], recognizers=spec.recognizers,
                      clip_model=spec.clip_model, progress=progress)
        table = pd.concat([table, gate_rows(report, cell)], ignore_index=True)
    for key, value in cell.params.items():
        table[key] = value
    table["cell"] = cell.id
    write_table(table, folder / "scores.parquet")


def seconds_rows(images: pd.DataFrame) -> pd.DataFrame:
    rows = images[["image_id", "pack", "prompt_id", "sampler", "steps", "guidance", "seed", "family"]].copy()
    rows["metric"], rows["value"] = "seconds_per_image", images["seconds"]
    rows["reason"], rows["recognizer"] = None, None
    return rows


def gate_rows(report, cell: Cell) -> pd.DataFrame:
    """What the upload gate said about this cell's set: share flagged (any / the matching flag / failed)."""
    photos = report.photos
    flag = MATCHING_FLAG.get(cell.params["kind"])
    values = {"gate_flagged": sum(bool(p.flags) for p in photos) / len(photos),
              "gate_failed": sum(p.status == "fail" for p in photos) / len(photos),
              "gate_matching_flag": (sum(flag in p.flags for p in photos) / len(photos)) if flag else None,
              "gate_ready": float(report.verdict == "ready")}
    return pd.DataFrame([{"image_id": None, "metric": k, "value": v, "recognizer": None,
                          "reason": None if v is not None else "this degradation has no flag of its own"}
                         for k, v in values.items()])


def assemble(spec: StudySpec, cells: list[Cell], out: Path, manifest: Manifest) -> None:
    from ..report import write_report

    table = pd.concat([read_table(out / "cells" / c.id / "scores.parquet") for c in cells], ignore_index=True)
    table["value"] = table["value"].astype(float)
    write_table(table, out / TABLE)
    fam = get_family(spec.family)
    if spec.kind == "sampler-steps":
        summary = summarize(table, ["sampler", "steps"])
        plot = sampler_steps_plot(summary)
        sections = []
    else:
        summary = summarize(table, ["cell", "kind", "strength"])
        deltas = pd.DataFrame([{**paired_difference(table, "heldout_facesim", "cell", "clean", c.id), "cell": c.id}
                               for c in cells if c.id != "clean"])
        plot = upload_quality_plot(summary, deltas, [c.id for c in cells])
        sections = [("Δ held-out FaceSim vs the clean set (paired on prompt and seed)", deltas)]
        write_table(deltas, out / "deltas.parquet")
    write_table(summary, out / SUMMARY)
    facts = {"study": spec.name, "kind": spec.kind, "family": fam.name, "spec": spec.source,
             "selfies": spec.selfies, "cells": ", ".join(c.id for c in cells), "seeds": ", ".join(map(str, spec.seeds)),
             "recognizers": ", ".join(spec.recognizers), "table": str(out / TABLE)}
    write_report(out / "report", f"Study: {spec.name}", facts, check=None, curve=None, images=None,
                 image_root=None, scores=None, tiny=fam.random_weights, sections=[("Summary (mean, 95% bootstrap CI)",
                                                                         summary), *sections],
                 plots=[("study", plot)] if plot else [])
    manifest.status = "done"
    manifest.outputs.update(table=TABLE, summary=SUMMARY, report="report/index.html")
    write_manifest(out, manifest)
