"""Settings read from the environment (and overridden by CLI flags): where the workspace is, which
device and dtype to run on, whether the model hub may be reached."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


_hub_probe: dict[str, bool] = {}


def hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """One quick TCP probe per process, so an offline box fails in milliseconds, not retry loops."""
    import socket

    if host not in _hub_probe:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _hub_probe[host] = True
        except OSError:
            _hub_probe[host] = False
    return _hub_probe[host]


@dataclass(frozen=True)
class Settings:
    """Resolved settings. ``home`` holds selfie-sets/, likenesses/, runs/, reports/ and models/."""

    home: Path = field(default_factory=lambda: Path(os.environ.get("WORKBENCH_HOME", "./workspace")))
    device: str | None = field(default_factory=lambda: os.environ.get("WORKBENCH_DEVICE") or None)
    dtype: str | None = field(default_factory=lambda: os.environ.get("WORKBENCH_DTYPE") or None)
    offline: bool = field(
        default_factory=lambda: _truthy(os.environ.get("HF_HUB_OFFLINE"))
        or _truthy(os.environ.get("WORKBENCH_OFFLINE"))
    )

    # Built tiny models; defaults to <home>/models. The app points every user's settings at one shared
    # folder, so per-user workspaces do not rebuild (or store) the same model.
    models_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())

    @property
    def models(self) -> Path:
        return Path(self.models_dir).expanduser().resolve() if self.models_dir else self.home.resolve() / "models"

    def hub_available(self) -> bool:
        """True when downloads may be tried: not marked offline and the hub answers."""
        return not self.offline and hub_reachable()

    def resolved_device(self) -> str:
        """The device; under ``accelerate launch`` / torchrun each process takes its own GPU
        (``cuda:<LOCAL_RANK>``), which is how studies fan cells out over several GPUs."""
        device = self.device or default_device()
        local_rank = os.environ.get("LOCAL_RANK")
        return f"cuda:{local_rank}" if device == "cuda" and local_rank is not None else device

    def resolved_dtype(self) -> str:
        """fp16 on CUDA by default (bf16 is the better choice for FLUX: the family table says so)."""
        if self.dtype:
            return self.dtype
        return "float16" if self.resolved_device().startswith("cuda") else "float32"


def torch_dtype(name: str):
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(table)}")
    return table[name]
