"""Likeness training: ``train_likeness(selfies, out, family=...) -> Likeness``.

``train_likeness`` loads on first use (it brings torch and diffusers); the card and the config do not."""

from typing import Any

from .card import Likeness
from .config import TrainConfig

__all__ = ["Likeness", "TrainConfig", "train_likeness"]


def __getattr__(name: str) -> Any:
    if name == "train_likeness":
        from .train import train_likeness

        globals()[name] = train_likeness
        return train_likeness
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
