"""Face analysis: one protocol, registered backends, and a per-image cache so a set is never
embedded twice in a process."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import unknown_name
from .types import Face, FaceAnalyzer

__all__ = ["Face", "FaceAnalyzer", "CachedAnalyzer", "get_analyzer", "available_recognizers", "identity_score",
           "RECOGNIZERS", "RECOGNIZER_REGISTRY", "Recognizer", "register_recognizer"]

@dataclass(frozen=True)
class Recognizer:
    """A face recognizer backend by name: ``factory(option)`` builds it (``option`` is what follows
    ``name:`` in ``insightface:/path/to/pack``), ``available()`` says whether it can run here now, and
    ``preference`` orders ``auto`` (highest first). Adding a backend is one ``register_recognizer`` call."""

    name: str
    factory: Callable[[str], Any]
    available: Callable[[], bool]
    preference: int = 0


RECOGNIZER_REGISTRY: dict[str, Recognizer] = {}


def register_recognizer(recognizer: Recognizer) -> Recognizer:
    RECOGNIZER_REGISTRY[recognizer.name] = recognizer
    return recognizer


def _dlib(option: str):
    from .dlib_backend import DlibAnalyzer

    return DlibAnalyzer()


def _insightface(option: str):
    from .insightface_backend import InsightFaceAnalyzer

    return InsightFaceAnalyzer(option or "buffalo_l")


_instances: dict[str, CachedAnalyzer] = {}


def image_key(image: Image.Image) -> str:
    """Content hash of the decoded pixels (the same photo under two names hits the cache)."""
    pixels = np.asarray(image.convert("RGB"))
    return hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()


class CachedAnalyzer:
    """Wraps a backend with an LRU of results keyed by image hash."""

    def __init__(self, backend, capacity: int = 4096):
        self.backend = backend
        self.name, self.version, self.licence = backend.name, backend.version, backend.licence
        # (similarity, source): the recognizer's published same-person threshold, if its makers give one
        self.operating_point = getattr(backend, "operating_point", None)
        self._cache: OrderedDict[str, list[Face]] = OrderedDict()
        self.capacity = capacity
        self._model_hash: str | None = None
        self._lock = threading.Lock()

    @property
    def model_hash(self) -> str:
        """sha256 over the recognizer's model files: calibrations and manifests name the exact model."""
        if self._model_hash is None:
            from ..provenance import files_fingerprint

            self._model_hash = files_fingerprint(getattr(self.backend, "model_files", []))
        return self._model_hash

    def analyze(self, image: Image.Image) -> list[Face]:
        return self.analyze_many([image])[0]

    def analyze_many(self, images: list[Image.Image]) -> list[list[Face]]:
        """Faces per image; the images not in the cache go to the backend in one batch (its fast path)."""
        keys = [image_key(image) for image in images]
        with self._lock:  # the app's job thread and a notebook may share one analyzer
            known = {key: self._cache[key] for key in keys if key in self._cache}
            for key in known:
                self._cache.move_to_end(key)
        missing = {key: image for key, image in zip(keys, images, strict=True) if key not in known}
        if missing:
            found = (self.backend.analyze_many(list(missing.values())) if len(missing) > 1
                     else [self.backend.analyze(next(iter(missing.values())))])
            fresh = dict(zip(missing, found, strict=True))
            self.learn(fresh)
            known.update(fresh)
        return [known[key] for key in keys]

    def known(self, images: list[Image.Image] | None = None) -> dict[str, list[Face]]:
        """What this analyzer has found (for ``images``, or all), by image hash: another process adopts it
        with ``learn`` (a Ray study finds each photo's faces once, in one task, and its cell tasks reuse them)."""
        wanted = None if images is None else {image_key(image) for image in images}
        with self._lock:
            return {key: faces for key, faces in self._cache.items() if wanted is None or key in wanted}

    def learn(self, found: dict[str, list[Face]]) -> None:
        with self._lock:
            for key, faces in found.items():
                self._cache[key] = faces
                self._cache.move_to_end(key)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)

    def similarity(self, a: Face, b: Face) -> float:
        return self.backend.similarity(a, b)

    def distance(self, a: Face, b: Face) -> float:
        return self.backend.distance(a, b)


def _insightface_present(pack: str = "buffalo_l") -> bool:
    from .insightface_backend import pack_dir

    return any(pack_dir(pack).glob("*.onnx")) if pack_dir(pack).is_dir() else False


register_recognizer(Recognizer("dlib", _dlib, available=lambda: True, preference=0))
register_recognizer(Recognizer("insightface", _insightface, available=lambda: _insightface_present(), preference=1))
RECOGNIZERS = tuple(RECOGNIZER_REGISTRY)


def available_recognizers() -> list[str]:
    """Recognizers that can run here now, the preferred first (ArcFace when its pack is on disk, else
    the embedded dlib recognizer, which always works offline)."""
    ready = [r for r in RECOGNIZER_REGISTRY.values() if r.available()]
    return [r.name for r in sorted(ready, key=lambda r: -r.preference)]


def get_analyzer(name: str = "auto") -> CachedAnalyzer:
    """A process-wide analyzer by name: a registered recognizer (``dlib``, ``insightface``), with an
    option after a colon (``insightface:<pack name or directory>``), or ``auto`` = the preferred one here."""
    if name in {"auto", "default"}:
        name = available_recognizers()[0]
    kind, _, option = name.partition(":")
    if kind not in RECOGNIZER_REGISTRY:
        raise unknown_name("recognizer", name, RECOGNIZER_REGISTRY)
    if name not in _instances:
        _instances[name] = CachedAnalyzer(RECOGNIZER_REGISTRY[kind].factory(option))
    return _instances[name]


def identity_score(analyzer, face: Face, references: list[Face]) -> dict[str, float]:
    """Similarity of ``face`` to a reference set: to the mean reference embedding, and mean/max
    over the individual references (all on the analyzer's 0-1 scale)."""
    if not references:
        raise ValueError("identity_score needs at least one reference face")
    sims = np.array([analyzer.similarity(face, ref) for ref in references])
    mean_ref = _mean_face(references)
    return {"facesim_mean_ref": analyzer.similarity(face, mean_ref), "facesim_mean": float(sims.mean()),
            "facesim_max": float(sims.max())}


def _mean_face(faces: list[Face]) -> Face:
    """A pseudo-face holding the mean raw descriptor and mean normalised embedding."""
    first = faces[0]
    embedding = np.mean([f.embedding for f in faces], axis=0)
    descriptor = None
    if first.descriptor is not None:
        descriptor = np.mean([f.descriptor for f in faces], axis=0)
    return Face(bbox=first.bbox, keypoints=first.keypoints, det_score=1.0,
                embedding=embedding / np.linalg.norm(embedding), recognizer=first.recognizer,
                descriptor=descriptor)
