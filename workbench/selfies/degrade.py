"""Controlled degradations of a selfie set, for upload-quality studies.

Each kind takes a ``strength`` (its unit is stated in ``KINDS``) and is deterministic for a seed.
``degrade_set`` writes a new selfie set plus a manifest saying what was done to which photo, so a study
can put "what the gate said" next to "what it cost".
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFilter

from ..errors import unknown_name
from ..images import encode_png, list_images, load_image
from ..store import Manifest, atomic_write_bytes, write_manifest

# kind -> what one unit of strength means
from .degradations import KINDS, PER_PHOTO, STRENGTH_RANGE  # noqa: E402,F401 (the registry: names, units)


def _face_box(image: Image.Image, analyzer):
    faces = analyzer.analyze(image) if analyzer is not None else []
    return faces[0] if faces else None


def _blur(image, strength, rng, face):
    size = face.size if face is not None else min(image.size)
    return image.filter(ImageFilter.GaussianBlur(strength * size / 256.0))


def _darken(image, strength, rng, face):
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return _to_image((pixels ** (1 + 0.25 * strength)) * 0.5 ** strength)


def _overexpose(image, strength, rng, face):
    return _to_image(np.asarray(image, dtype=np.float32) / 255.0 * 2.0 ** strength)


def _noise(image, strength, rng, face):
    pixels = np.asarray(image, dtype=np.float32)
    return _to_image((pixels + rng.normal(0, 10 * strength, pixels.shape)) / 255.0)


def _jpeg(image, strength, rng, face):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(max(1, min(95, 100 - 20 * strength))))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _downscale(image, strength, rng, face):
    factor = 2.0 ** strength
    small = image.resize((max(1, round(image.width / factor)), max(1, round(image.height / factor))), Image.BICUBIC)
    return small.resize(image.size, Image.BICUBIC)


def _skin_mask(image: Image.Image, face) -> np.ndarray:
    """Face hull minus eyes, brows and mouth, feathered: where a beauty filter smooths."""
    mask = np.zeros((image.height, image.width), np.float32)
    points = face.landmarks.astype(np.int32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.concatenate([points[0:17], points[17:27] - [0, int(face.size * 0.1)]])),
                       1.0)
    for part in (points[36:42], points[42:48], points[48:60], points[17:22], points[22:27]):
        hull = cv2.convexHull(part)
        cv2.fillConvexPoly(mask, hull, 0.0)
        cv2.polylines(mask, [hull], True, 0.0, thickness=max(2, int(face.size * 0.03)))
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, face.size * 0.01))


def _beauty(image, strength, rng, face):
    if face is None or face.landmarks is None:
        return image.filter(ImageFilter.SMOOTH_MORE)
    pixels = np.asarray(image, dtype=np.float32)
    smooth = cv2.GaussianBlur(pixels, (0, 0), max(1.0, face.size * 0.05))
    alpha = min(1.0, strength / 3.0) * _skin_mask(image, face)[..., None]
    return _to_image((pixels * (1 - alpha) + smooth * alpha) / 255.0)


def _occlusion(image, strength, rng, face):
    """Sunglasses-like: a dark lens over each eye joined by a bridge; strength scales the lenses."""
    pixels = np.asarray(image).copy()
    if face is None or face.landmarks is None:
        pixels[int(image.height * 0.3):int(image.height * 0.4)] = (18, 18, 22)
        return Image.fromarray(pixels)
    left, right = face.landmarks[36:42].mean(0), face.landmarks[42:48].mean(0)
    iod = float(np.linalg.norm(right - left))
    axes = (int(0.42 * iod * strength), int(0.3 * iod * strength))
    for center in (left, right):
        cv2.ellipse(pixels, (int(center[0]), int(center[1])), axes, 0, 0, 360, (18, 18, 22), -1)
    cv2.line(pixels, tuple(int(v) for v in left), tuple(int(v) for v in right), (18, 18, 22), max(2, int(iod * 0.06)))
    return Image.fromarray(pixels)


def _to_image(unit: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(unit, 0, 1) * 255 + 0.5).astype(np.uint8))


TRANSFORMS: dict[str, Callable] = {"blur": _blur, "darken": _darken, "overexpose": _overexpose, "noise": _noise,
                                   "jpeg": _jpeg, "downscale": _downscale, "beauty": _beauty, "occlusion": _occlusion}


def degrade_image(image: Image.Image, kind: str, strength: float, seed: int = 0, analyzer=None) -> Image.Image:
    """One photo, degraded. Face-aware kinds (blur, beauty, occlusion) use ``analyzer`` to find it."""
    if kind not in TRANSFORMS:
        raise unknown_name("per-photo degradation", kind, TRANSFORMS)
    face = _face_box(image, analyzer) if kind in {"blur", "beauty", "occlusion"} else None
    return TRANSFORMS[kind](image.convert("RGB"), float(strength), np.random.default_rng(seed), face)


def _near_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    dx, dy = rng.integers(1, 4, size=2)
    copy = image.crop((dx, dy, width - 3 + dx, height - 3 + dy)).resize((width, height), Image.BICUBIC)
    return _to_image(np.asarray(copy, dtype=np.float32) / 255.0 * rng.uniform(0.96, 1.04))


# Strengths that mean something for each kind (a negative darkening brightened photos to white).


def degrade_set(folder: str | os.PathLike, out: str | os.PathLike, kind: str, strength: float, seed: int = 0,
                fraction: float = 1.0, others: str | os.PathLike | None = None, analyzer=None) -> Path:
    """Write a degraded copy of the selfie set ``folder`` to ``out`` with ``manifest.json`` (kind,
    strength, seed, and per photo what was done). ``fraction`` of the photos (chosen with the seed)
    are degraded for per-photo kinds; the rest are copied unchanged."""
    from ..errors import WorkbenchError
    from ..faces import get_analyzer

    if kind not in KINDS:
        raise unknown_name("degradation", kind, KINDS)
    if not 0 < fraction <= 1:
        raise WorkbenchError(f"--fraction {fraction:g}: the share of photos to degrade must be in (0, 1].")
    low, high = STRENGTH_RANGE.get(kind, (0.0, 10.0))
    if not low <= strength <= high:
        raise WorkbenchError(f"--strength {strength:g} for {kind}: must lie in [{low:g}, {high:g}] ({KINDS[kind]}).")
    folder, out = Path(folder), Path(out)
    files = list_images(folder)
    if not files:
        raise WorkbenchError(f"{folder}: no photos to degrade; pass a folder of selfies.")
    if out.exists() and any(out.iterdir()):
        raise WorkbenchError(f"{out} already exists and is not empty; choose a new --out so nothing is overwritten.")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    actions: dict[str, str] = {}
    if kind in PER_PHOTO:
        analyzer = analyzer or (get_analyzer() if kind in {"blur", "beauty", "occlusion"} else None)
        chosen = set(rng.choice(len(files), size=round(fraction * len(files)), replace=False).tolist())
        for index, path in enumerate(files):
            target = out / (path.stem + ".png")
            if index in chosen:
                image = degrade_image(load_image(path), kind, strength, seed=seed * 100_003 + index, analyzer=analyzer)
                _save_png(image, target)
                actions[target.name] = f"{kind} strength {strength:g} of {path.name}"
            else:
                shutil.copyfile(path, out / path.name)
                actions[path.name] = "unchanged"
    elif kind == "duplicates":
        for path in files:
            shutil.copyfile(path, out / path.name)
            actions[path.name] = "unchanged"
        for n, index in enumerate(rng.choice(len(files), size=min(len(files), round(strength)), replace=False)):
            target = out / f"{files[index].stem}-copy{n}.png"
            _save_png(_near_copy(load_image(files[index]), rng), target)
            actions[target.name] = f"near-copy of {files[index].name}"
    elif kind == "intruder":
        strangers = list_images(Path(others)) if others else []
        if not strangers:
            raise WorkbenchError("intruder needs --others, a folder of photos of someone else.")
        swapped = set(rng.choice(len(files), size=min(len(files), round(strength)), replace=False).tolist())
        for index, path in enumerate(files):
            if index in swapped:
                stranger = strangers[len(actions) % len(strangers)]
                shutil.copyfile(stranger, out / f"{path.stem}-intruder{stranger.suffix}")
                actions[f"{path.stem}-intruder{stranger.suffix}"] = f"replaced {path.name} by {stranger}"
            else:
                shutil.copyfile(path, out / path.name)
                actions[path.name] = "unchanged"
    else:  # fewer
        kept = sorted(rng.choice(len(files), size=max(1, min(len(files), round(strength))), replace=False).tolist())
        for index in kept:
            shutil.copyfile(files[index], out / files[index].name)
            actions[files[index].name] = "kept"
    write_manifest(out, Manifest(
        kind="degrade", status="done", inputs={"folder": str(folder.resolve()), "others": str(others or "")},
        config={"kind": kind, "strength": strength, "fraction": fraction, "unit": KINDS[kind]}, seeds=[seed],
        timings={"seconds": time.perf_counter() - started}, outputs={"photos": actions}))
    return out


def _save_png(image: Image.Image, target: Path) -> None:
    atomic_write_bytes(target, encode_png(image))
