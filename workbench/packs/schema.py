"""Style packs: YAML validated by a pydantic schema; errors name the file, line and field."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import limits
from ..errors import ConfigError, unknown_name

BUILTIN_DIR = Path(__file__).parent / "builtin"
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class PackPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: str
    negative: str | None = None
    variants: dict[str, str] = Field(default_factory=dict)  # class word -> prompt (e.g. man / woman)
    # Per-prompt settings override the pack's; explicit generate() arguments override both.
    sampler: str | None = None
    steps: int | None = limits.field("inference_steps")
    guidance: float | None = limits.field("guidance")
    size: int | None = limits.field("image_size")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        """An id names the image files: a name, never a path."""
        from ..names import RULE, check_name

        try:
            return check_name(value, "prompt id")
        except Exception:
            raise ValueError(f"prompt ids are names ({RULE}), got {value!r}") from None

    @field_validator("prompt")
    @classmethod
    def _has_subject(cls, value: str) -> str:
        if "{subject}" not in value:
            raise ValueError("a prompt must contain {subject} where the likeness goes")
        return value

    def text_for(self, class_word: str) -> str:
        return self.variants.get(class_word, self.prompt)


class Pack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = 1
    description: str
    negative_prompt: str = ""
    sampler: str | None = None
    steps: int | None = limits.field("inference_steps")
    guidance: float | None = limits.field("guidance")
    size: int | None = limits.field("image_size")
    images_per_prompt: int = limits.field("images_per_prompt", 1)
    # The face detailer for this pack (generate/detailer.py): {} turns it on with its defaults;
    # max_face_share, margin, strength, steps, feather and prompt override them.
    detailer: dict[str, Any] | None = None
    prompts: list[PackPrompt] = Field(min_length=1, max_length=int(limits.bound("prompts_per_pack").high))

    @field_validator("name")
    @classmethod
    def _kebab(cls, value: str) -> str:
        if not KEBAB.match(value):
            raise ValueError("pack names are kebab-case, e.g. corporate-headshot")
        return value

    @field_validator("prompts")
    @classmethod
    def _unique_ids(cls, value: list[PackPrompt]) -> list[PackPrompt]:
        """Two prompts with one id would write the same image files: one would silently replace the other."""
        seen: set[str] = set()
        for prompt in value:
            if prompt.id in seen:
                raise ValueError(f"prompt id {prompt.id!r} appears twice; ids must be unique in a pack")
            seen.add(prompt.id)
        return value


def _line_of(node: yaml.Node, location: tuple) -> int | None:
    """1-based line of the YAML node at a pydantic error location."""
    for key in location:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == key]
            if not match:
                return node.start_mark.line + 1
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


def load_pack(path: str | os.PathLike) -> Pack:
    """A pack from a YAML file, validated; errors name the file, line and field."""
    from ..safeyaml import load_yaml_text

    path = Path(path)
    data = load_yaml_text(path)  # size, alias and encoding limits; ConfigError naming the file
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a pack is a YAML mapping (name, description, prompts).")
    try:
        return Pack.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        line = _line_of(node, first["loc"]) if node is not None else None
        raise ConfigError(f"{path}:{line}: field '{field}': {first['msg']}") from exc


def builtin_packs() -> dict[str, Path]:
    """The packs shipped with the workbench: name -> YAML file."""
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.yaml"))}


def get_pack(name_or_path: str) -> Pack:
    """A built-in pack by name, or a pack YAML file by path (a misspelt name gets a did-you-mean)."""
    packs = builtin_packs()
    if name_or_path in packs:
        return load_pack(packs[name_or_path])
    if Path(name_or_path).is_file():
        return load_pack(name_or_path)
    raise unknown_name("pack", name_or_path, packs)
