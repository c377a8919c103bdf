"""Study and suite specs as data (YAML validated by pydantic), in the spirit of lm-evaluation-harness
task files: a spec names everything it needs, paths are relative to the spec file (or the repository)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from .. import limits
from ..errors import ConfigError


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
    prompts_per_pack: int | None = limits.field("prompts_per_pack", 1)
    samplers: list[str] | None = None
    steps: list[Annotated[int, limits.item("inference_steps")]] | None = None
    seeds: list[Annotated[int, limits.item("seed")]] = Field(
        default_factory=lambda: [0, 1], min_length=1, max_length=int(limits.bound("seeds_per_job").high))
    guidance: float | None = limits.field("guidance")
    recognizers: list[str] = Field(default_factory=lambda: ["auto"])
    clip_model: str | None = None  # hub id or local dir; None skips CLIP metrics (reason in every row)
    log_with: list[str] = Field(default_factory=list)  # trackers: tensorboard, mlflow, wandb, trackio
    source: str = ""  # the file it came from (set by the loader)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        """The name becomes folder names (study-<name>, suite-<name>): a name, never a path."""
        from ..names import NAME, RULE

        if not NAME.match(value) or ".." in value:
            raise ValueError(f"names are {RULE}, got {value!r}")
        return value

    @field_validator("train")
    @classmethod
    def _train_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Checked when the spec loads, so a typo fails before any cell trains."""
        from ..likeness.config import TrainConfig

        try:
            TrainConfig.parse("tiny-sd", **{k: v for k, v in value.items() if k != "family"})
        except ConfigError as exc:  # as a ValueError, so the loader names the spec file
            raise ValueError(str(exc)) from None
        return value

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
    """A study: the grid (``GridSpec``), its kind, the people and training replicates, and the kind's own
    fields (``kinds/<kind>.py``'s ``Options``: an upload-quality study's ``degradations``, an arms study's
    ``arms``...), which read as attributes of the spec (``spec.degradations``) and serialize flat, as in
    the YAML."""

    kind: str
    # The noise that matters: independent training runs (seeds seed, seed+1, ...) and several people.
    replicates: int = limits.field("replicates", 1)
    identities: list[str] | None = None  # selfie sets; default: [selfies]
    cpu_minutes: float | None = Field(None, gt=0)  # what the study costs on a 2-core CPU (shipped tiny studies)
    options: BaseModel | None = Field(None, exclude=True)  # the kind's fields, validated by its Options

    @model_validator(mode="before")
    @classmethod
    def _kind_fields(cls, data: Any) -> Any:
        """Split the kind's own fields off and validate them with the kind's ``Options`` (unknown ones fail,
        as the spec's own do). The kind is checked against the registry, with a did-you-mean."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return data
        from .kinds import KINDS, get_kind

        if data["kind"] not in KINDS:
            import difflib

            close = difflib.get_close_matches(data["kind"], KINDS, n=1)
            raise ValueError(f"unknown study kind {data['kind']!r}; known: {', '.join(KINDS)}."
                             + (f" Did you mean {close[0]!r}?" if close else ""))
        options_model = get_kind(data["kind"]).Options
        if isinstance(data.get("options"), options_model):
            return data
        data = dict(data)
        own = {key: data.pop(key) for key in list(data) if key in options_model.model_fields}
        try:
            data["options"] = options_model.model_validate(own)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        return data

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            options = self.__dict__.get("options")
            if options is not None and name in type(options).model_fields:
                return getattr(options, name)
            raise

    @model_serializer(mode="wrap")
    def _flat(self, handler) -> dict[str, Any]:
        data = handler(self)
        if self.options is not None:
            data.update(self.options.model_dump())
        return data

    def identity_sets(self) -> list[tuple[str, Path]]:
        """(name, folder) per person; the name is the folder's name (unique, or an error)."""
        if not (self.identities or self.selfies):
            raise ConfigError(f"{self.source}: name the photos: 'selfies: FOLDER' or 'identities: [FOLDER, ...]'.")
        from ..names import check_name

        sets = [(check_name(Path(s).resolve().name, "identity folder"), self.path(s))
                for s in (self.identities or [self.selfies])]
        names = [name for name, _ in sets]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.source}: identities must have distinct folder names, got {names}.")
        return sets


def load_yaml(path: str | os.PathLike, model: type[BaseModel]) -> Any:
    """Parse and validate; errors name the file and the field."""
    from ..safeyaml import load_yaml_text

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such spec file.")
    data = load_yaml_text(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a spec is a YAML mapping of fields.")
    try:
        return model.model_validate({**data, "source": str(path.resolve())})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def load_spec(path: str | os.PathLike) -> StudySpec:
    """A study spec from YAML, validated when it loads (errors name the file and field)."""
    return load_yaml(path, StudySpec)
