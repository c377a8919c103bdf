"""Study kinds: one class each (cells, what the cells share, one cell's table, the assembled report).
Adding a kind is one class here registered in ``STUDY_KINDS``.

Every kind runs each cell for every identity (person) and replicate (independent training seed), so the
table carries ``identity`` and ``replicate`` columns and the CIs can cover the noise that matters:
people and training runs, not only generation seeds (``metrics/aggregate.py``).

What trains, renders and scores (torch, diffusers, the scoring models) is imported where a cell runs, so
a study's driver — which plans, collects tables and assembles, a Ray head node included — never loads it.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..faces import get_analyzer
from ..images import folder_entries, list_images
from ..likeness import Likeness, TrainConfig
from ..metrics import paired_difference, summarize
from ..metrics.aggregate import holm
from ..models import get_family
from ..store import is_done
from .plots import arms_plot, sampler_steps_plot, tradeoff_plot, upload_quality_plot
from .spec import StudySpec

# The degradation a check is meant to catch, for the "what the gate said" column.
MATCHING_FLAG = {"blur": "blurry", "downscale": "blurry", "darken": "too_dark", "overexpose": "too_bright",
                 "beauty": "beauty_filter", "occlusion": "sunglasses", "duplicates": "duplicate",
                 "intruder": "different_person", "noise": None, "jpeg": None, "fewer": None}
FIDELITY = "test_facesim"


@dataclass
class Cell:
    id: str  # what the cell varies (e.g. "euler-20", "blur-3"): the 'cell' column, shared across people
    identity: str
    replicate: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"{self.identity}/r{self.replicate}/{self.id}"


def by_identity(cells: list[Cell]) -> dict[str, list[Cell]]:
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.identity, []).append(cell)
    return groups


@dataclass
class Assembled:
    summary: pd.DataFrame
    sections: list[tuple[str, pd.DataFrame]]
    plots: list[tuple[str, bytes]]


class StudyKind:
    name = ""

    def __init__(self, spec: StudySpec):
        self.spec = spec
        self.family = get_family(spec.family)
        self._shared: dict[Any, Any] = {}
        self.prepared: dict[str, Any] = {}  # per identity, what ``prepare_identity`` found

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def plan(self) -> list[Cell]:
        return [Cell(vid, identity, r, params) for identity, _ in self.spec.identity_sets()
                for r in range(self.spec.replicates) for vid, params in self.variants()]

    def train_seed(self, replicate: int) -> int:
        return int(self.spec.train.get("seed", 0)) + replicate

    def run_cell(self, cell: Cell, folder: Path, out: Path, settings: Settings, progress: bool) -> pd.DataFrame:
        raise NotImplementedError

    def shared_keys(self, cells: list[Cell]) -> list[tuple]:
        """What several cells share and a parallel executor builds first (none by default); a key's first
        item is the identity it belongs to."""
        return []

    def shared_key(self, cell: Cell) -> tuple | None:
        """The shared input a cell renders from, when cells can run as a group on one worker (None: no)."""
        return None

    def build_shared(self, key: tuple, out: Path, settings: Settings, progress: bool) -> None:
        """Build one shared input (see ``shared_keys``)."""

    def prepare_identity(self, identity: str, cells: list[Cell], out: Path, progress: bool) -> Any:
        """Work done for a person before ``cells`` (theirs) run, once in each process that runs their cells
        (the serial driver up front; on Ray, each worker from the faces of ``face_photos``, which are found
        only once); ``adopt`` keeps the result there. None (nothing) by default."""
        return None

    def face_photos(self, identity: str, cells: list[Cell], out: Path) -> list[Path]:
        """The person's photos whose faces ``prepare_identity`` looks for (with the first recognizer): a
        parallel executor finds them first, a task per photo over all its workers (none by default)."""
        return []

    def adopt(self, identity: str, prepared: Any) -> None:
        """Take what ``prepare_identity`` found for ``identity`` (in whichever process runs its cells)."""
        if prepared is not None:
            self.prepared[identity] = prepared

    def prepare(self, cells: list[Cell], out: Path, progress: bool) -> None:
        """Every person's ``prepare_identity`` in this process (the serial executor)."""
        for identity, theirs in by_identity(cells).items():
            self.adopt(identity, self.prepare_identity(identity, theirs, out, progress))

    def assemble(self, table: pd.DataFrame, cells: list[Cell]) -> Assembled:
        raise NotImplementedError


def comparisons(table: pd.DataFrame, pairs: list[tuple[str, str, Any, Any]]) -> pd.DataFrame:
    """Paired differences for a family of comparisons (metric, column, a, b), Holm-adjusted."""
    rows = [paired_difference(table, metric, column, a, b) for metric, column, a, b in pairs]
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["p_holm"] = holm(frame["p_value"].tolist())
        frame[["a", "b"]] = frame[["a", "b"]].astype(str)  # steps and sampler names in one column
    return frame


class SamplerSteps(StudyKind):
    """One likeness per (identity, replicate); a cell per (sampler, steps) renders the same prompts and
    seeds at batch 1 on a pipeline loaded once per likeness, after a warm-up, so seconds per image are
    per image and load time stays out."""

    name = "sampler-steps"

    def variants(self):
        samplers, steps = self.spec.samplers or [self.family.sampler], self.spec.steps or [self.family.steps]
        return [(f"{s}-{n}", {"sampler": s, "steps": n}) for s in samplers for n in steps]

    def likeness(self, identity: str, replicate: int, out: Path, settings: Settings, progress: bool):
        key = (identity, replicate)
        if key not in self._shared:
            folder = out / "likenesses" / identity / f"r{replicate}"
            from ..generate import load_renderer

            self.build_shared(key, out, settings, progress)
            likeness = Likeness.load(folder)
            self._shared.clear()  # one renderer in memory at a time
            renderer = load_renderer(likeness, self.family, self.spec.base, settings)
            warm_up(renderer[0], self.family)
            self._shared[key] = (likeness, renderer)
        return self._shared[key]

    def shared_keys(self, cells):
        return sorted({(c.identity, c.replicate) for c in cells})

    def shared_key(self, cell):
        return (cell.identity, cell.replicate)

    def needs_check(self, identity: str, cells: list[Cell], out: Path) -> bool:
        """A person's set is checked unless every likeness of theirs these cells render from is trained."""
        return not all(is_done(out / "likenesses" / identity / f"r{c.replicate}") for c in cells)

    def face_photos(self, identity, cells, out):
        if not self.needs_check(identity, cells, out):
            return []
        return [path for path in folder_entries(dict(self.spec.identity_sets())[identity]) if path.is_file()]

    def prepare_identity(self, identity, cells, out, progress):
        """Check the person's selfies once (``likenesses/<identity>/check``): every replicate trains from that
        report. The faces the check finds stay in this process's analyzer, where scoring the test photos
        finds them."""
        if not self.needs_check(identity, cells, out):
            return None
        from ..selfies import check_selfies

        folder, analyzer = dict(self.spec.identity_sets())[identity], get_analyzer(self.spec.recognizers[0])
        return {"check": check_selfies(folder, analyzer, out=out / "likenesses" / identity / "check",
                                       progress=progress)}

    def build_shared(self, key, out, settings, progress):
        from ..likeness import train_likeness

        identity, replicate = key
        train_likeness(dict(self.spec.identity_sets())[identity], out / "likenesses" / identity / f"r{replicate}",
                       family=self.spec.family, base=self.spec.base, settings=settings, progress=progress,
                       analyzer=get_analyzer(self.spec.recognizers[0]),
                       report=self.prepared.get(identity, {}).get("check"),
                       **{**self.spec.train, "seed": self.train_seed(replicate)})

    def run_cell(self, cell, folder, out, settings, progress):
        from ..generate import generate
        from ..metrics import score

        likeness, renderer = self.likeness(cell.identity, cell.replicate, out, settings, progress)
        run = generate(likeness, self.spec.packs, folder / "run", samplers=[cell.params["sampler"]],
                       steps=[cell.params["steps"]], seeds=self.spec.seeds, guidance=self.spec.guidance,
                       prompts_per_pack=self.spec.prompts_per_pack, batch_size=1, settings=settings,
                       progress=progress, renderer=renderer)
        table = score(run.path, recognizers=self.spec.recognizers, clip_model=self.spec.clip_model, progress=progress)
        return pd.concat([table, seconds_rows(run.table)], ignore_index=True)

    def assemble(self, table, cells):
        summary = summarize(table, ["sampler", "steps"])
        samplers = sorted(table["sampler"].dropna().unique())
        steps = sorted(table["steps"].dropna().unique())
        pairs = [(m, "steps", a, b) for m in (FIDELITY, "clip_score", "seconds_per_image")
                 for a, b in zip(steps, steps[1:], strict=False)]
        pairs += [(m, "sampler", samplers[0], other) for m in (FIDELITY, "clip_score") for other in samplers[1:]]
        diffs = comparisons(table, pairs)
        return Assembled(summary, [("Paired differences (b - a; same likeness, prompts and seeds; Holm-adjusted "
                                    "p over the family)", diffs)],
                         [("metrics-vs-steps", sampler_steps_plot(summary)),
                          ("fidelity-vs-time", tradeoff_plot(summary))])


class UploadQuality(StudyKind):
    """Per identity the clean set is split once into reference photos nobody trains on and a pool; each
    cell degrades the pool, runs the gate, trains (same seed per replicate, and the clean cell's number of
    steps unless the spec sets one) and scores the same grid against the references."""

    name = "upload-quality"

    def variants(self):
        return [("clean", {"kind": "clean", "strength": 0.0})] + [
            (d.id, {"kind": d.kind, "strength": d.strength, "fraction": d.fraction}) for d in self.spec.degradations]

    def plan(self):
        if not self.spec.degradations:
            from ..errors import ConfigError

            raise ConfigError(f"{self.spec.source}: an upload-quality study needs a 'degradations' list.")
        return super().plan()

    def split(self, identity: str, out: Path) -> tuple[list[Path], list[Path]]:
        """The identity's reference photos and pool, drawn once and kept as a list of the original files
        (``inputs/<identity>/split.json``, with their sha256): the study keeps no copy of anyone's photos."""
        import json

        from ..provenance import file_sha256
        from ..store import atomic_write_json

        record = out / "inputs" / identity / "split.json"
        if not record.is_file():  # the same draw in any process (shards may race: same content, atomic write)
            files = list_images(dict(self.spec.identity_sets())[identity])
            count = min(self.spec.reference_photos, max(0, len(files) - 3))
            held = set(random.Random(0).sample(files, count))
            atomic_write_json(record, {"references": [str(p.resolve()) for p in files if p in held],
                                       "pool": [str(p.resolve()) for p in files if p not in held],
                                       "sha256": {str(p.resolve()): file_sha256(p) for p in files}})
        try:
            split = json.loads(record.read_text(encoding="utf-8"))
            if not isinstance(split, dict) or not {"references", "pool", "sha256"} <= split.keys():
                raise ValueError("not a split record")
        except (UnicodeDecodeError, ValueError) as exc:
            from ..errors import ArtifactError

            raise ArtifactError(f"{record}: damaged ({exc}); start the study in a new folder.") from None
        changed = [p for p in split["sha256"] if not Path(p).is_file() or file_sha256(p) != split["sha256"][p]]
        if changed:
            from ..errors import ConfigError

            raise ConfigError(f"{identity}: {len(changed)} photo(s) changed or went missing since the study split "
                              f"them (first: {changed[0]}); start the study in a new folder.")
        return [Path(p) for p in split["references"]], [Path(p) for p in split["pool"]]

    def shared_keys(self, cells):
        return sorted({(c.identity,) for c in cells})

    def build_shared(self, key, out, settings, progress):
        self.split(key[0], out)

    def steps_for(self, pool: list[Path], settings: Settings) -> int:
        """The clean cell's optimizer steps: every cell of an identity trains this many (no confound)."""
        if self.spec.train.get("steps"):
            return int(self.spec.train["steps"])
        config = TrainConfig.parse(self.spec.family, **{**self.spec.train, "validation": 0, "test": 0})
        return config.resolve(self.family, len(pool), settings.resolved_device()).steps

    def run_cell(self, cell, folder, out, settings, progress):
        from ..chain import run_chain
        from ..selfies.degrade import degrade_set

        references, pool = self.split(cell.identity, out)
        # The photos this cell needs, copied into the cell while it runs and removed when it ends: a staging
        # folder (.*.tmp), so what a killed cell leaves goes as soon as the cell's folder is locked again.
        inputs = folder / ".inputs.tmp"
        try:
            shutil.rmtree(inputs, ignore_errors=True)
            reference_dir = stage_photos(references, inputs / "references")
            selfies = stage_photos(pool, inputs / "pool")
            if cell.params["kind"] != "clean":
                degraded = inputs / "selfies"
                others = self.spec.path(self.spec.others) if self.spec.others else None
                degrade_set(selfies, degraded, cell.params["kind"], cell.params["strength"], seed=0,
                            fraction=cell.params.get("fraction", 1.0), others=others)
                selfies = degraded
            steps = self.steps_for(pool, settings)
            chain = run_chain(selfies, folder / "likeness", folder / "run", check_dir=folder / "check",
                              family=self.spec.family, base=self.spec.base, settings=settings,
                              train={**self.spec.train, "validation": 0, "test": 0, "ignore_gate": True,
                                     "steps": steps, "seed": self.train_seed(cell.replicate)},
                              packs=self.spec.packs, samplers=self.spec.samplers, steps=self.spec.steps,
                              seeds=self.spec.seeds, guidance=self.spec.guidance,
                              prompts_per_pack=self.spec.prompts_per_pack, recognizers=self.spec.recognizers,
                              clip_model=self.spec.clip_model, references=reference_dir, progress=progress)
        finally:
            shutil.rmtree(inputs, ignore_errors=True)
        table, report = chain.scores, chain.check
        table = pd.concat([table, gate_rows(report, cell)], ignore_index=True)
        table["train_steps"] = steps
        return table

    def assemble(self, table, cells):
        ids = list(dict.fromkeys(c.id for c in cells))
        summary = summarize(table, ["cell", "kind", "strength"])
        steps = table.groupby("cell")["train_steps"].agg(lambda s: ", ".join(map(str, sorted(set(s))))).rename(
            "train_steps").reset_index()
        diffs = comparisons(table, [(FIDELITY, "cell", "clean", c) for c in ids if c != "clean"])
        if not diffs.empty:
            diffs["cell"] = diffs["b"]
        return Assembled(summary, [("Δ test FaceSim vs the clean set (paired on identity, replicate, prompt and "
                                    "seed; Holm-adjusted p)", diffs), ("Training steps per cell", steps)],
                         [("study", upload_quality_plot(summary, diffs, ids))])


class Arms(SamplerSteps):
    """Every arm (likeness, base, IP-Adapter face, both) renders the same grid — prompts, seeds,
    sampler, steps — from the same likeness's training photos, and is scored against the same test
    photos; the report puts test FaceSim, id_match_rate, the copy-paste gap, Face-Div, CLIP score,
    seconds per image and peak GPU memory of each arm next to its paired difference from ``likeness``."""

    name = "arms"
    METRICS = ("test_facesim", "id_match_rate", "copy_paste_gap", "face_div_lpips", "clip_score", "seconds_per_image")

    def variants(self):
        return [(arm, {"arm": arm, "ip_scale": self.spec.ip_scale}) for arm in self.spec.arms]

    def run_cell(self, cell, folder, out, settings, progress):
        import torch

        from ..generate import generate
        from ..metrics import score

        key = (cell.identity, cell.replicate)
        self.build_shared(key, out, settings, progress)
        likeness = Likeness.load(out / "likenesses" / cell.identity / f"r{cell.replicate}")
        cuda = settings.resolved_device().startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        run = generate(likeness, self.spec.packs, folder / "run", samplers=self.spec.samplers, steps=self.spec.steps,
                       seeds=self.spec.seeds, guidance=self.spec.guidance, prompts_per_pack=self.spec.prompts_per_pack,
                       batch_size=1, settings=settings, progress=progress, arm=cell.params["arm"],
                       ip_scale=cell.params["ip_scale"])
        peak = torch.cuda.max_memory_allocated() / 1024**3 if cuda else None
        table = score(run.path, likeness=likeness, recognizers=self.spec.recognizers, clip_model=self.spec.clip_model,
                      progress=progress, settings=settings)
        memory = pd.DataFrame([{"image_id": None, "metric": "peak_gpu_memory_gb", "value": peak, "recognizer": None,
                                "reason": None if peak is not None else "peak memory is measured on a GPU"}])
        return pd.concat([table, seconds_rows(run.table), memory], ignore_index=True)

    def assemble(self, table, cells):
        summary = summarize(table, ["cell"])
        arms = list(dict.fromkeys(c.id for c in cells))
        pairs = [(m, "cell", "likeness", arm) for m in ("test_facesim", "id_match_rate", "copy_paste_gap",
                                                         "clip_score", "seconds_per_image")
                 for arm in arms if arm != "likeness" and "likeness" in arms]
        diffs = comparisons(table, pairs)
        per_arm = summary[summary.metric.isin([*self.METRICS, "peak_gpu_memory_gb"])].pivot_table(
            index="cell", columns="metric", values="mean", aggfunc="first", dropna=False).reindex(arms).reset_index()
        return Assembled(summary, [("Paired differences from the likeness arm (same prompts, seeds and test photos; "
                                    "Holm-adjusted p)", diffs), ("One row per arm (means)", per_arm)],
                         [("arms", arms_plot(summary, arms))])


def stage_photos(files: list[Path], folder: Path) -> Path:
    """Copies of ``files`` in ``folder`` (a cell's working inputs; the caller removes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, folder / path.name)
    return folder


def warm_up(pipe, family) -> None:
    """One throwaway render: kernel selection and allocator growth stay out of the timed cells."""
    import torch

    pipe(prompt="warm-up", num_inference_steps=1, height=family.resolution, width=family.resolution,
         generator=torch.Generator("cpu").manual_seed(0))


def seconds_rows(images: pd.DataFrame) -> pd.DataFrame:
    rows = images[["image_id", "pack", "prompt_id", "sampler", "steps", "guidance", "seed", "family"]].copy()
    rows["metric"], rows["value"] = "seconds_per_image", images["seconds"]
    rows["reason"], rows["recognizer"] = None, None
    return rows


def gate_rows(report, cell: Cell) -> pd.DataFrame:
    """What the upload gate said, one 0/1 row per photo (so shares get Wilson intervals over photos):
    flagged at all, refused, flagged with the flag meant for this degradation; and the set's verdict."""
    flag = MATCHING_FLAG.get(cell.params["kind"])
    rows = []
    for photo in report.photos:
        rows += [{"photo": photo.file, "metric": "gate_flagged", "value": float(bool(photo.flags))},
                 {"photo": photo.file, "metric": "gate_failed", "value": float(photo.status == "fail")},
                 {"photo": photo.file, "metric": "gate_matching_flag", "value": float(flag in photo.flags) if flag
                  else None, "reason": None if flag else "this degradation has no flag of its own"}]
    rows.append({"photo": None, "metric": "gate_ready", "value": float(report.verdict == "ready")})
    frame = pd.DataFrame(rows)
    frame["image_id"], frame["recognizer"] = None, None
    if "reason" not in frame:
        frame["reason"] = None
    return frame


STUDY_KINDS: dict[str, type[StudyKind]] = {k.name: k for k in (SamplerSteps, UploadQuality, Arms)}
