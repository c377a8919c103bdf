"""Identity and image-quality metrics, aggregation with bootstrap CIs."""

from .aggregate import bootstrap_ci, paired_difference, summarize
from .score import score

__all__ = ["bootstrap_ci", "paired_difference", "score", "summarize"]
