"""The upload-quality study: what each kind of bad upload (blur, darkness, filters, duplicates, an intruder,
too few photos) costs the likeness, beside how often the upload gate flags it. Per identity the clean set is
split once into reference photos nobody trains on and a pool; each cell degrades the pool, runs the gate,
trains and scores the same grid against the references."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ... import limits
from ...config import Settings
from ...images import list_images
from ...likeness import TrainConfig
from ...metrics import summarize
from ..plots import errors, mark_no_interval, png
from .base import FIDELITY, Assembled, Cell, StudyKind, comparisons
from .base import Options as NoOptions

# The degradation a check is meant to catch, for the "what the gate said" column.
MATCHING_FLAG = {"blur": "blurry", "downscale": "blurry", "darken": "too_dark", "overexpose": "too_bright",
                 "beauty": "beauty_filter", "occlusion": "sunglasses", "duplicates": "duplicate",
                 "intruder": "different_person", "noise": None, "jpeg": None, "fewer": None}


class Degradation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    strength: float
    fraction: float = Field(1.0, gt=0, le=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        """The kind becomes part of a cell's folder: only the registered kinds."""
        from ...selfies.degradations import KINDS

        if value not in KINDS:
            raise ValueError(f"unknown degradation {value!r}; known: {', '.join(KINDS)}")
        return value

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.strength:g}" + (f"-f{self.fraction:g}" if self.fraction < 1 else "")


class Options(NoOptions):
    degradations: list[Degradation] = Field(default_factory=list)  # one cell each, beside the clean one
    others: str | None = None  # photos of someone else, for intruder degradations
    # photos split off per identity, never trained on
    reference_photos: int = Field(2, ge=1, le=limits.bound("reference_photos").high)


class UploadQuality(StudyKind):
    """Per identity the clean set is split once into reference photos nobody trains on and a pool; each
    cell degrades the pool, runs the gate, trains (same seed per replicate, and the clean cell's number of
    steps unless the spec sets one) and scores the same grid against the references."""

    name = "upload-quality"
    summary = "each degradation of the uploads (blur, darkness, filters, duplicates, ...) vs the clean set"
    Options = Options

    def variants(self):
        return [("clean", {"kind": "clean", "strength": 0.0})] + [
            (d.id, {"kind": d.kind, "strength": d.strength, "fraction": d.fraction}) for d in self.spec.degradations]

    def plan(self):
        if not self.spec.degradations:
            from ...errors import ConfigError

            raise ConfigError(f"{self.spec.source}: an upload-quality study needs a 'degradations' list.")
        return super().plan()

    def split(self, identity: str, out: Path) -> tuple[list[Path], list[Path]]:
        """The identity's reference photos and pool, drawn once and kept as a list of the original files
        (``inputs/<identity>/split.json``, with their sha256): the study keeps no copy of anyone's photos."""
        import json

        from ...provenance import file_sha256
        from ...store import atomic_write_json

        record = out / "inputs" / identity / "split.json"
        if not record.is_file():  # the same draw in any process (shards may race: same content, atomic write)
            files = list_images(dict(self.spec.identity_sets())[identity])
            held, shoots = reference_draw(files, min(self.spec.reference_photos, max(0, len(files) - MIN_POOL)))
            atomic_write_json(record, {"references": [str(p.resolve()) for p in files if p in held],
                                       "pool": [str(p.resolve()) for p in files if p not in held],
                                       "sha256": {str(p.resolve()): file_sha256(p) for p in files},
                                       "shoots": {str(p.resolve()): shoots[p] for p in files},
                                       "references_share_shoot_with_pool": bool(
                                           {shoots[p] for p in held} & {shoots[p] for p in files if p not in held})})
        try:
            split = json.loads(record.read_text(encoding="utf-8"))
            if not isinstance(split, dict) or not {"references", "pool", "sha256"} <= split.keys():
                raise ValueError("not a split record")
        except (UnicodeDecodeError, ValueError) as exc:
            from ...errors import ArtifactError

            raise ArtifactError(f"{record}: damaged ({exc}); start the study in a new folder.") from None
        changed = [p for p in split["sha256"] if not Path(p).is_file() or file_sha256(p) != split["sha256"][p]]
        if changed:
            from ...errors import ConfigError

            raise ConfigError(f"{identity}: {len(changed)} photo(s) changed or went missing since the study split "
                              f"them (first: {changed[0]}); start the study in a new folder.")
        return [Path(p) for p in split["references"]], [Path(p) for p in split["pool"]]

    def references_note(self, out: Path) -> str:
        """Which photos each person's identity scores are against, and whether they share a shoot with the
        photos the cells train on (read from ``inputs/<identity>/split.json``)."""
        import json

        said = []
        for identity, _ in self.spec.identity_sets():
            record = out / "inputs" / identity / "split.json"
            if not record.is_file():
                continue
            split = json.loads(record.read_text(encoding="utf-8"))
            shares = split.get("references_share_shoot_with_pool")
            said.append(f"{identity}: {len(split['references'])} reference photo(s) held out"
                        + (", SHARING a shoot with the photos that train" if shares else
                           ", from their own shoot" if shares is False else ""))
        return "; ".join(said)

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
        from ...chain import run_chain
        from ...selfies.degrade import degrade_set

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
                              train={**self.train_options(cell.replicate), "validation": 0, "test": 0,
                                     "ignore_gate": True, "steps": steps},
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


MIN_POOL = 1  # photos left to train on (and degrade) after the references are held out


def reference_draw(files: list[Path], count: int, shoots: dict[Path, str] | None = None
                   ) -> tuple[set[Path], dict[Path, str]]:
    """The photos held out as references: whole shoots (smallest first) when the set has two or more, so no
    reference shares a shoot with a photo that trains; else ``count`` photos at random (seed 0). ``shoots``:
    found here (``find_shoots``) unless given."""
    from ...likeness.splits import find_shoots

    if shoots is None:
        shoots, _ = find_shoots(files, {})
    by_shoot: dict[str, list[Path]] = {}
    for path in files:
        by_shoot.setdefault(shoots[path], []).append(path)
    held: set[Path] = set()
    if count and len(by_shoot) >= 2:
        for shoot in sorted(by_shoot, key=lambda s: (len(by_shoot[s]), s)):
            if len(held) >= count or len(files) - len(held) - len(by_shoot[shoot]) < MIN_POOL:
                continue
            held |= set(by_shoot[shoot])
            if len({shoots[p] for p in files if p not in held}) <= 1:
                break
    if count and not held:
        held = set(random.Random(0).sample(files, count))
    return held, shoots


def stage_photos(files: list[Path], folder: Path) -> Path:
    """Copies of ``files`` in ``folder`` (a cell's working inputs; the caller removes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, folder / path.name)
    return folder


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


def upload_quality_plot(summary: pd.DataFrame, deltas: pd.DataFrame, cells: list[str]) -> bytes:
    """Left: what the gate said (share of photos flagged, and by the matching check). Right: what it cost
    (Δ test FaceSim vs clean, 95% CI)."""
    fig = Figure(figsize=(10, 3.4))
    gate, cost = fig.subplots(1, 2)
    x = np.arange(len(cells))
    for offset, metric, label in ((-0.2, "gate_flagged", "any flag"), (0.2, "gate_matching_flag", "matching flag")):
        values = [summary[(summary.cell == c) & (summary.metric == metric)]["mean"].mean() for c in cells]
        gate.bar(x + offset, np.nan_to_num(values), width=0.4, label=label)
    gate.set_xticks(x, cells, rotation=30, ha="right")
    gate.set_ylim(0, 1)
    gate.set_title("what the gate said (share of photos)")
    gate.legend(fontsize=8)
    rows = deltas.groupby("cell").first().reindex(cells[1:]) if not deltas.empty else pd.DataFrame()
    if not rows.empty and rows["mean_diff"].notna().any():
        as_means = rows.rename(columns={"mean_diff": "mean"})
        cost.errorbar(np.arange(len(rows)), rows["mean_diff"], yerr=errors(as_means), fmt="o", capsize=4)
        mark_no_interval(cost, np.arange(len(rows)), as_means)
        cost.axhline(0, color="grey", lw=0.8)
    else:
        cost.text(0.5, 0.5, "no FaceSim values\n(no faces in the probe images)", ha="center", va="center",
                  transform=cost.transAxes)
    cost.set_xticks(np.arange(len(cells) - 1), cells[1:], rotation=30, ha="right")
    cost.set_title("what it cost: Δ test FaceSim vs clean")
    return png(fig)


Kind = UploadQuality
