"""Training set preparation: face-aware square crops, captions, and held-out photos.

Validation and test photos (``splits.py``) are never trained on; they are passed here to be left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from ..errors import WorkbenchError
from ..images import load_image

if TYPE_CHECKING:
    from .config import TrainConfig

HEAD_AND_SHOULDERS = 2.6  # crop side as a multiple of the face box: keeps hair, chin and shoulders


@dataclass
class Sample:
    file: Path
    image: Image.Image = field(repr=False)
    caption: str


@dataclass
class TrainingSet:
    samples: list[Sample]
    held_out: list[Path]
    token: str
    class_word: str


def face_crop(image: Image.Image, bbox: tuple[float, float, float, float] | None,
              size: int | tuple[int, int]) -> Image.Image:
    """Crop around the face (head and shoulders) at the aspect of ``size`` (an int is square),
    clamped to the photo, resized to ``size``."""
    width, height = (size, size) if isinstance(size, int) else size
    aspect = width / height
    if bbox is None:
        side = min(image.size)
        cx, cy = image.width / 2, image.height / 2
    else:
        x0, y0, x1, y1 = bbox
        side = max(x1 - x0, y1 - y0) * HEAD_AND_SHOULDERS
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)  # a little below centre: shoulders
    crop_w, crop_h = side * aspect**0.5, side / aspect**0.5
    shrink = min(1.0, image.width / crop_w, image.height / crop_h)
    crop_w, crop_h = crop_w * shrink, crop_h * shrink
    left = min(max(cx - crop_w / 2, 0), image.width - crop_w)
    top = min(max(cy - crop_h / 2, 0), image.height - crop_h)
    box = tuple(int(round(v)) for v in (left, top, left + crop_w, top + crop_h))
    return image.crop(box).resize((width, height), Image.LANCZOS)


def nearest_bucket(image_size: tuple[int, int], buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect is closest (in log ratio) to the photo's."""
    import math

    aspect = image_size[0] / image_size[1]
    return min(buckets, key=lambda b: abs(math.log(aspect * b[1] / b[0])))


def prepare_training_set(files: list[Path], faces: dict[Path, tuple | None], size: int, token: str,
                         class_word: str, held_out: list[Path], captions: dict[str, str] | None = None,
                         buckets: list[tuple[int, int]] | None = None) -> TrainingSet:
    """Crops and captions for every file not held out. ``faces`` maps a file to its subject's box.
    With ``buckets``, each photo is cropped at the bucket nearest its own aspect, else square."""
    samples = []
    for path in files:
        if path in held_out:
            continue
        caption = (captions or {}).get(path.name) or f"photo of {token} {class_word}"
        caption = caption.replace("{subject}", f"{token} {class_word}")
        photo = load_image(path)
        shape = nearest_bucket(photo.size, buckets) if buckets else (size, size)
        image = face_crop(photo, faces.get(path), shape)
        samples.append(Sample(file=path, image=image, caption=caption))
    return TrainingSet(samples=samples, held_out=list(held_out), token=token, class_word=class_word)


def load_captions(folder: Path, files: list[Path], captions_file: str | None) -> dict[str, str]:
    """Per-photo captions: a ``captions.csv`` (file,caption) when given, else kohya-style sidecar
    ``<photo>.txt`` files next to the photos. ``{subject}`` in a caption becomes ``<token> <class>``;
    a caption without it gets the subject prepended, so the trigger is always trained."""
    captions: dict[str, str] = {}
    if captions_file:
        import csv

        path = Path(captions_file)
        if not path.is_file():
            raise WorkbenchError(f"captions file {path} not found; give a CSV with columns file,caption.")
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    if not row.get("file") or row.get("caption") is None:
                        raise WorkbenchError(f"{path}:{line}: needs columns 'file' and 'caption'.")
                    captions[row["file"]] = row["caption"].strip()
        except UnicodeDecodeError as exc:
            raise WorkbenchError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV.") from None
        except csv.Error as exc:
            raise WorkbenchError(f"{path}: not a readable CSV ({exc}); give columns file,caption.") from None
    else:
        for photo in files:
            sidecar = photo.with_suffix(".txt")
            if sidecar.is_symlink():  # a link may point anywhere on the server: never read
                raise WorkbenchError(f"{sidecar}: the caption is a link; put the caption text in the file itself.")
            if sidecar.is_file():
                try:
                    captions[photo.name] = sidecar.read_text(encoding="utf-8").strip()
                except UnicodeDecodeError as exc:
                    raise WorkbenchError(f"{sidecar}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    return {name: text if "{subject}" in text else f"photo of {{subject}}, {text}" for name, text in captions.items()}


def training_files(selfies, report, config: TrainConfig) -> list[Path]:
    """The photos the selfie check passed, or with ``ignore_gate`` every readable one."""
    files = report.training_files
    if config.ignore_gate:  # research: train on every readable photo, whatever the gate said
        files = [report.folder / p.file for p in report.photos if "unreadable" not in p.flags]
    if not files:
        raise WorkbenchError(f"{selfies}: none of the photos can be used for training ({report.verdict}); "
                             "see the check's advice.")
    return files
