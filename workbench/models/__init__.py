"""Model families (data) and how their pipelines are loaded."""

from .families import FAMILIES, Family, get_family
from .loading import ModelSource, ensure_tiny, load_pipeline, resolve_source, weights_status

__all__ = ["FAMILIES", "Family", "ModelSource", "ensure_tiny", "get_family", "load_pipeline",
           "resolve_source", "weights_status"]
