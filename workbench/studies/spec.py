"""Study and suite specs as data (YAML validated by pydantic), in the spirit of lm-evaluation-harness
task files: a spec names everything it needs, paths are relative to the spec file (or the repository)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError


class Degradation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    strength: float
    fraction: float = Field(1.0, gt=0, le=1)

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.strength:g}" + (f"-f{self.fraction:g}" if self.fraction < 1 else "")


class GridSpec(BaseModel):
    """What to train and render: shared by studies and QA suites."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    family: str = "tiny-sd"
    base: str | None = None
    selfies: str | None = None  # a suite needs it; a study may name identities instead
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig options (steps, rank, ...)
    packs: list[str] = Field(default_factory=lambda: ["corporate-headshot"])
    prompts_per_pack: int | None = 1
    samplers: list[str] | None = None
    steps: list[int] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0, 1])
    guidance: float | None = None
    recognizers: list[str] = Field(default_factory=lambda: ["auto"])
    clip_model: str | None = None  # hub id or local dir; None skips CLIP metrics (reason in every row)
    source: str = ""  # the file it came from (set by the loader)

    def path(self, value: str) -> Path:
        """A path in the spec: absolute or relative to the spec's folder. One that does not exist is an
        error naming the spec, never a silent fallback to some other folder."""
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = (Path(self.source).parent / candidate) if self.source else candidate.resolve()
        if not candidate.exists():
            raise ConfigError(f"{self.source or 'spec'}: {value!r} does not exist (looked for {candidate}); paths "
                              "in a spec are relative to the spec file's folder.")
        return candidate


class StudySpec(GridSpec):
    kind: Literal["sampler-steps", "upload-quality"]
    degradations: list[Degradation] = Field(default_factory=list)  # upload-quality cells
    others: str | None = None  # photos of someone else, for intruder degradations
    # The noise that matters: independent training runs (seeds seed, seed+1, ...) and several people.
    replicates: int = Field(1, ge=1)
    identities: list[str] | None = None  # selfie sets; default: [selfies]
    reference_photos: int = Field(2, ge=1)  # upload-quality: photos split off per identity, never trained on

    def identity_sets(self) -> list[tuple[str, Path]]:
        """(name, folder) per person; the name is the folder's name (unique, or an error)."""
        if not (self.identities or self.selfies):
            raise ConfigError(f"{self.source}: name the photos: 'selfies: FOLDER' or 'identities: [FOLDER, ...]'.")
        sets = [(Path(s).name, self.path(s)) for s in (self.identities or [self.selfies])]
        names = [name for name, _ in sets]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.source}: identities must have distinct folder names, got {names}.")
        return sets


def load_yaml(path: str | os.PathLike, model: type[BaseModel]) -> Any:
    """Parse and validate; errors name the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such spec file.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    try:
        return model.model_validate({**data, "source": str(path.resolve())})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def load_spec(path: str | os.PathLike) -> StudySpec:
    return load_yaml(path, StudySpec)
