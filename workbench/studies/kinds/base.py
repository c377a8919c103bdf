"""What every study kind shares: a cell, the kind's interface, paired comparisons, and the rows every
kind adds (seconds per image).

Every kind runs each cell for every identity (person) and replicate (independent training seed), so the
table carries ``identity`` and ``replicate`` columns and the CIs can cover the noise that matters:
people and training runs, not only generation seeds (``metrics/aggregate.py``).

What trains, renders and scores (torch, diffusers, the scoring models) is imported where a cell runs, so
a study's driver — which plans, collects tables and assembles, a Ray head node included — never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ...config import Settings
from ...metrics import paired_difference
from ...metrics.aggregate import holm
from ...models import get_family

if TYPE_CHECKING:
    from ..spec import StudySpec

FIDELITY = "test_facesim"


class Options(BaseModel):
    """A kind's own spec fields (none by default). A kind declares its fields in a subclass; the spec
    validates them when it loads, and unknown ones are errors."""

    model_config = ConfigDict(extra="forbid")


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
    """A study kind: its cells (``variants`` x identities x replicates), one cell's tidy table, and the
    assembled summary, comparisons and plots. ``name`` is its registry key; ``Options`` its spec fields."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for help texts and docs
    Options: ClassVar[type[BaseModel]] = Options

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

    def train_options(self, replicate: int) -> dict:
        """The training options of a replicate: its own training seed, and one split seed for every replicate
        of a person (they test on the same photos; only training noise differs between them)."""
        return {**self.spec.train, "seed": self.train_seed(replicate),
                "split_seed": int(self.spec.train.get("split_seed", self.spec.train.get("seed", 0)))}

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




def warm_up(pipe, family) -> None:
    """One throwaway render: kernel selection and allocator growth stay out of the timed cells."""
    import torch

    pipe(prompt="warm-up", num_inference_steps=1, height=family.resolution, width=family.resolution,
         generator=torch.Generator("cpu").manual_seed(0))



def seconds_rows(images: pd.DataFrame) -> pd.DataFrame:
    """One ``seconds_per_image`` row per image, with what the time ran under (threads, device, load)."""
    keep = [c for c in ("threads", "device", "load_avg") if c in images.columns]
    rows = images[["image_id", "pack", "prompt_id", "sampler", "steps", "guidance", "seed", "family", *keep]].copy()
    rows["metric"], rows["value"] = "seconds_per_image", images["seconds"]
    rows["reason"], rows["recognizer"] = None, None
    return rows
