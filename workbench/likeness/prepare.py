"""Training set preparation: face-aware square crops, captions, and held-out photos.

Held-out photos are never trained on; checkpoint selection scores identity against them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..images import load_image

HEAD_AND_SHOULDERS = 2.6  # crop side as a multiple of the face box: keeps hair, chin and shoulders


@dataclass
class Sample:
    id: str  # stable: hash of the file bytes + crop size (caches are keyed by this, not loop position)
    file: Path
    image: Image.Image = field(repr=False)
    caption: str


@dataclass
class TrainingSet:
    samples: list[Sample]
    held_out: list[Path]
    token: str
    class_word: str

    @property
    def instance_prompt(self) -> str:
        return f"photo of {self.token} {self.class_word}"


def face_crop(image: Image.Image, bbox: tuple[float, float, float, float] | None, size: int) -> Image.Image:
    """Square crop around the face (head and shoulders), clamped to the photo, resized to ``size``."""
    if bbox is None:
        side = min(image.size)
        cx, cy = image.width / 2, image.height / 2
    else:
        x0, y0, x1, y1 = bbox
        side = min(max(x1 - x0, y1 - y0) * HEAD_AND_SHOULDERS, min(image.size))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)  # a little below centre: shoulders
    left = min(max(cx - side / 2, 0), image.width - side)
    top = min(max(cy - side / 2, 0), image.height - side)
    box = tuple(int(round(v)) for v in (left, top, left + side, top + side))
    return image.crop(box).resize((size, size), Image.LANCZOS)


def choose_held_out(files: list[Path], count: int | None, seed: int) -> list[Path]:
    """2 held-out photos from 6 up, 1 from 3 up, none below (then selection uses training photos)."""
    if count is None:
        count = 2 if len(files) >= 6 else 1 if len(files) >= 3 else 0
    return sorted(random.Random(seed).sample(sorted(files), count))


def prepare_training_set(files: list[Path], faces: dict[Path, tuple | None], size: int, token: str,
                         class_word: str, held_out: list[Path], captions: dict[str, str] | None = None
                         ) -> TrainingSet:
    """Crops and captions for every file not held out. ``faces`` maps a file to its subject's box."""
    samples = []
    for path in files:
        if path in held_out:
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
        caption = (captions or {}).get(path.name) or f"photo of {token} {class_word}"
        caption = caption.replace("{subject}", f"{token} {class_word}")
        image = face_crop(load_image(path), faces.get(path), size)
        samples.append(Sample(id=f"{digest}-{size}", file=path, image=image, caption=caption))
    return TrainingSet(samples=samples, held_out=list(held_out), token=token, class_word=class_word)
