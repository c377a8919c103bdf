"""The upload-quality gate: ``check_selfies(folder) -> CheckReport``."""

from .check import CheckReport, check_selfies
from .photo import FLAGS, PhotoCheck
from .thresholds import DEFAULT_THRESHOLDS, Thresholds

__all__ = ["FLAGS", "CheckReport", "DEFAULT_THRESHOLDS", "PhotoCheck", "Thresholds", "check_selfies"]
