"""Run a study cell by cell: plan the cells of the spec's kind (``kinds.py``) for every identity and
replicate, run the ones not done yet, then assemble one tidy table, the summary, paired comparisons,
plots and the report.

A cell is done when its ``manifest.json`` says so; a rerun skips done cells. With ``shard=(i, n)`` a
process runs groups i, i+n, ... of the cells that share an input (a sampler-steps likeness; otherwise one
cell each), so no process waits for another's work; the process that finds every cell done assembles the
table, and one that does not says which cells are missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from ..artifacts import SCORES, STUDY_COMPARISONS, STUDY_SUMMARY, STUDY_TABLE, read_scores
from ..config import Settings
from ..errors import ConfigError
from ..lineage import link
from ..store import Manifest, file_sha256, is_done, stage, write_manifest, write_table
from .design import design_check
from .kinds import get_kind
from .kinds.base import Cell, StudyKind
from .spec import StudySpec, load_spec

TABLE, SUMMARY = STUDY_TABLE, STUDY_SUMMARY


def plan_cells(spec: StudySpec) -> list[Cell]:
    return get_kind(spec.kind)(spec).plan()


def parse_shard(text: str | None) -> tuple[int, int]:
    """``i/n`` (0-based). A study is not run under ``accelerate launch`` / torchrun: those processes join
    one process group, and the trainings of different cells would average each other's gradients."""
    if not text and int(os.environ.get("WORLD_SIZE", os.environ.get("NUM_PROCESSES", "1")) or 1) > 1:
        raise ConfigError("a study under accelerate launch / torchrun would train different cells as one "
                          "distributed job; use --executor ray, or --shard i/n in processes you start yourself.")
    if text:
        try:
            index, _, count = text.partition("/")
            shard = (int(index), int(count or 1))
        except ValueError as exc:
            raise ConfigError(f"shard {text!r}: expected i/n with 0 <= i < n") from exc
    else:
        shard = (0, 1)
    if not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"shard {text!r}: expected i/n with 0 <= i < n")
    return shard


def shard_cells(kind: StudyKind, cells: list[Cell], shard: tuple[int, int]) -> list[Cell]:
    """Shard i of n: groups i, i+n, ... of the cells sharing an input, in plan order."""
    groups: dict[object, list[Cell]] = {}
    for index, cell in enumerate(cells):
        key = kind.shared_key(cell)
        groups.setdefault(("cell", index) if key is None else key, []).append(cell)
    return [cell for group in list(groups.values())[shard[0]::shard[1]] for cell in group]


def log_cell(spec: StudySpec, cell: Cell, table: pd.DataFrame, out: Path) -> dict[str, str]:
    """One tracker run per cell (config, and each metric's mean with its n, missing count and 95 % interval),
    so the tracker's compare view works and never shows a mean without its uncertainty."""
    if not spec.log_with:
        return {}
    from .. import tracking
    from ..metrics import summarize

    tracking.default_mlflow_uri(out)
    means = {}
    for row in summarize(table, []).to_dict("records"):  # each mean with its n and interval, never alone
        means.update({f"{row['metric']}/mean": row["mean"], f"{row['metric']}/n": row["n"],
                      f"{row['metric']}/n_missing": row["n_missing"], f"{row['metric']}/ci_low": row["ci_low"],
                      f"{row['metric']}/ci_high": row["ci_high"]})
    config = {**cell.params, "cell": cell.id, "identity": cell.identity, "replicate": cell.replicate,
              "family": spec.family}
    return tracking.log_cell(spec.log_with, spec.name, cell.folder.replace("/", "-"), out / "tracking", config, means)


def study_inputs(spec: StudySpec) -> dict:
    """What the study reads, hashed: the spec file and every photo of every identity."""
    from ..images import list_images

    return {"spec": spec.source, "spec_sha256": file_sha256(spec.source) if spec.source else None,
            "identity_folders": {name: str(folder.resolve()) for name, folder in spec.identity_sets()},
            "identities": {name: {p.name: file_sha256(p) for p in list_images(folder)}
                           for name, folder in spec.identity_sets()}}


def run_study(spec: StudySpec | str | os.PathLike, out: str | os.PathLike, settings: Settings | None = None,
              shard: tuple[int, int] = (0, 1), progress: bool = True, executor: str = "serial",
              address: str | None = None, max_retries: int = 2, num_cpus: int | None = None) -> Path:
    """Run (or resume) the study into ``out``; returns ``out``. The report is written once all cells are
    done. ``executor``: ``serial`` (this process) or ``ray`` (``address``: a cluster, default a local one)."""
    from .executors import run_ray

    if executor not in ("serial", "ray"):  # before anything is written
        raise ConfigError(f"executor {executor!r}: expected serial or ray.")
    spec = spec if isinstance(spec, StudySpec) else load_spec(spec)
    settings = settings or Settings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kind = get_kind(spec.kind)(spec)
    cells = kind.plan()
    design = design_check(spec)  # what the design can conclude, said before anything trains
    if progress and shard[0] == 0:
        print("\n".join(design.lines()))
    manifest = Manifest(kind="study", status="running", inputs=study_inputs(spec), config=spec.model_dump(),
                        seeds=list(spec.seeds), outputs={"cells": [c.folder for c in cells], "executor": executor,
                                                         "design": design.as_dict()},
                        links={f"identity:{name}": link(folder, out) for name, folder in spec.identity_sets()})
    if shard[0] == 0 and not is_done(out):
        write_manifest(out, manifest)
    todo = [c for c in shard_cells(kind, cells, shard) if not is_done(out / "cells" / c.folder)]

    def finish(cell: Cell, table: pd.DataFrame, seconds: float) -> None:
        """The driver records a finished cell: its table, its tracker run, its manifest (= done)."""
        folder = out / "cells" / cell.folder
        for key, value in cell.params.items():
            table[key] = value
        table["cell"], table["identity"], table["replicate"] = cell.id, cell.identity, cell.replicate
        write_table(table, folder / SCORES)
        trackers = log_cell(spec, cell, table, out)
        write_manifest(folder, Manifest(kind="study-cell", status="done", config=cell.params, seeds=list(spec.seeds),
                                        timings={"seconds": seconds}, outputs={"trackers": trackers}))

    failures: dict[str, str] = {}
    if executor == "ray":
        if todo:  # nothing left to run (a finished study re-assembled): no cluster needed
            failures = run_ray(kind, todo, out, settings, progress, finish, address, max_retries, num_cpus)
    else:  # serial
        kind.prepare(todo, out, progress)
        for cell in todo:
            folder = out / "cells" / cell.folder
            folder.mkdir(parents=True, exist_ok=True)
            cell_manifest = Manifest(kind="study-cell", status="running", config=cell.params, seeds=list(spec.seeds))
            write_manifest(folder, cell_manifest)
            started = time.perf_counter()
            with stage(folder, cell_manifest):
                table = kind.run_cell(cell, folder, out, settings, progress)
            finish(cell, table, time.perf_counter() - started)
    for folder, error in failures.items():
        write_manifest(out / "cells" / folder, Manifest(kind="study-cell", status="failed", error=error))
    missing = [c.folder for c in cells if not is_done(out / "cells" / c.folder)]
    if missing:
        manifest.outputs["failed_cells"] = failures
        if shard[0] == 0:
            write_manifest(out, manifest)
        print(f"study {spec.name}: {len(cells) - len(missing)}/{len(cells)} cells done; "
              + (f"failed after retries: {', '.join(failures)}; " if failures else "")
              + f"missing {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''} (other shards, or rerun to "
              "resume)")
        return out
    assemble(kind, cells, out, manifest)
    return out


def assemble(kind: StudyKind, cells: list[Cell], out: Path, manifest: Manifest) -> None:
    from ..metrics.aggregate import resampled_levels
    from ..report import write_report

    spec = kind.spec
    table = pd.concat([read_scores(out / "cells" / c.folder) for c in cells], ignore_index=True)
    table["value"] = table["value"].astype(float)
    write_table(table, out / TABLE)
    result = kind.assemble(table, cells)
    write_table(result.summary, out / SUMMARY)
    for index, (_, frame) in enumerate(result.sections):  # the first section is the paired comparisons
        write_table(frame, out / (STUDY_COMPARISONS if index == 0 else f"section-{index}.parquet"))
    levels = resampled_levels(table)
    facts = {"study": spec.name, "kind": spec.kind, "family": kind.family.name, "spec": spec.source,
             "identities": ", ".join(name for name, _ in spec.identity_sets()), "replicates": spec.replicates,
             "cells": ", ".join(dict.fromkeys(c.id for c in cells)), "seeds": ", ".join(map(str, spec.seeds)),
             "recognizers": ", ".join(spec.recognizers), "table": str(out / TABLE),
             "what the CIs cover": ("identities, training replicates and images (hierarchical bootstrap)" if levels ==
                                    ["identity", "replicate"] else f"{', '.join(levels)} and images" if levels else
                                    "generation seeds and prompts only: one identity and one training run; add "
                                    "'identities' and 'replicates' to the spec to cover people and training noise"),
             "protocol": PROTOCOL}
    from ..protocol import protocol_facts
    from .design import design_check

    references = kind.references_note(out) if hasattr(kind, "references_note") else None
    protocol = protocol_facts(out, design=design_check(spec), summary=result.summary, references=references)
    write_report(out / "report", f"Study: {spec.name}", facts, check=None, curve=None, images=None,
                 image_root=None, scores=None, tiny=kind.family.random_weights,
                 sections=[("Summary (mean, 95% CI; 'ci_method' says how, 'ci_note' why one is missing)",
                            result.summary), *result.sections], plots=result.plots, protocol=protocol)
    manifest.status = "done"
    manifest.outputs.update(table=TABLE, summary=SUMMARY, report="report/index.html")
    write_manifest(out, manifest)


PROTOCOL = ("identity is scored against test photos only (never trained on, never used to choose the checkpoint); "
            "every arm and cell is scored against the same references; comparisons pair on every factor (prompt, "
            "seed, sampler, steps, recognizer, identity, replicate) and carry Holm-adjusted p-values")
