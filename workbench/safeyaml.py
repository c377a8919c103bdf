"""YAML for specs and packs, with limits: a file over ``MAX_BYTES`` or a document whose aliases expand
past ``MAX_NODES`` nodes (a "billion laughs" bomb: 571 bytes grew past 3 GB once written) is refused
before anything is built from it. Non-UTF-8 text is refused with the file named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 32


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """Nodes in the document with every alias expanded, counted up to ``limit``."""
    count, stack = 0, [node]
    while stack:
        current = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
    return count


def load_yaml_text(path: str | os.PathLike) -> Any:
    """Parse ``path`` safely (plain data only, size and alias limits), or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file.")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes; a spec or pack is at most {MAX_BYTES} bytes.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, MAX_NODES) > MAX_NODES:
            raise ConfigError(f"{path}: expands to more than {MAX_NODES} YAML nodes through aliases; refused.")
        if node is not None and _depth(node) > MAX_DEPTH:
            raise ConfigError(f"{path}: nested deeper than {MAX_DEPTH} levels; a spec or pack is a few levels deep.")
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; a spec or pack is a few levels deep.") from None
    except yaml.constructor.ConstructorError as exc:  # !!python/object and other tags that would build objects
        raise ConfigError(f"{path}:{exc.problem_mark.line + 1 if exc.problem_mark else '?'}: {exc.problem}; specs "
                          "and packs hold plain data (no tags).") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None


def _depth(node: yaml.Node) -> int:
    """How deeply ``node`` nests sequences and mappings (iteratively: no recursion on hostile input)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(current, yaml.SequenceNode):
            stack.extend((child, level + 1) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            stack.extend((child, level + 1) for pair in current.value for child in pair)
    return deepest
