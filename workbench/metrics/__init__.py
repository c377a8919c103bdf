"""Identity and image-quality metrics, aggregation with bootstrap CIs.

``score`` (in ``scoring.py``) loads on first use: it brings torch and the scoring models, which a study's
driver — it only aggregates tables — never needs."""

from typing import Any

from .aggregate import bootstrap_ci, paired_difference, summarize

__all__ = ["bootstrap_ci", "paired_difference", "score", "summarize"]


def __getattr__(name: str) -> Any:
    if name == "score":
        from .scoring import score

        globals()[name] = score
        return score
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
