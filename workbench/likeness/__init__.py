"""Likeness training: ``train_likeness(selfies, out, family=...) -> Likeness``."""

from .card import Likeness
from .config import TrainConfig
from .train import train_likeness

__all__ = ["Likeness", "TrainConfig", "train_likeness"]
