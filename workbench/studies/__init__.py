"""Studies: a YAML spec -> a grid of cells -> one tidy table -> plots and a report. Cells resume one by
one and can be split across processes (``--shard i/n`` or ``accelerate launch``)."""

from .runner import run_study
from .spec import StudySpec, load_spec

__all__ = ["StudySpec", "load_spec", "run_study"]
