"""Studies: a YAML spec -> a grid of cells -> one tidy table -> plots and a report. Cells resume one by
one and run in this process, as Ray tasks (``executor="ray"``), or split over processes you start yourself
(``--shard i/n``, by shared likeness: no process waits for another)."""

from .runner import run_study
from .spec import StudySpec, load_spec

__all__ = ["StudySpec", "load_spec", "run_study"]
