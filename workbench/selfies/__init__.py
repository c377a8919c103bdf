"""The upload-quality gate: ``check_selfies(folder) -> CheckReport``.

Names load on first use, so the registries of this package (``degradations``) are read without the image
and table code."""

from typing import Any

__all__ = ["FLAGS", "CheckReport", "DEFAULT_THRESHOLDS", "PhotoCheck", "Thresholds", "check_selfies"]
_WHERE = {"CheckReport": ".check", "check_selfies": ".check", "FLAGS": ".photo", "PhotoCheck": ".photo",
          "DEFAULT_THRESHOLDS": ".thresholds", "Thresholds": ".thresholds"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
