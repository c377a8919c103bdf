"""The one way images enter the workbench.

Every photo a user gives goes through :func:`load_image`: the format is checked, the pixel count is
checked *before* decoding (decompression bombs), EXIF orientation is applied, and every mode
(RGBA, P, LA, CMYK, 16-bit, grayscale) becomes 8-bit RGB. Refusals are typed errors that name the
file, the reason and the fix, so a caller can skip that photo and go on with the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import WorkbenchError

# Phones make 12-50 MP photos; 64 MP leaves room for them and refuses a 20k x 20k "bomb" (400 MP).
MAX_PIXELS = 64_000_000
# Formats PIL decodes whole (no JPEG-style draft): their decoded size, plus the RGB copy, must fit this. A
# 124 KB PNG of 7999 x 7999 once decoded to ~2 GB; a 12 MP phone PNG needs ~70 MB.
DECODE_BUDGET = 256 * 2**20
DRAFT_FORMATS = {"JPEG", "MPO"}
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 10, "I;16B": 10, "I;16L": 10, "RGB": 3,
                   "RGBA": 4, "CMYK": 4, "YCbCr": 3, "I": 12, "F": 12}  # 16/32-bit: through a float64 copy
MAX_BYTES = 100 * 1024 * 1024
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp")
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "HEIF", "TIFF", "BMP"}
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated photo is refused, never half-read
# zlib level of every PNG the workbench writes (renders, probes, class images, degraded sets, contact
# sheets; the HTML report's inline thumbnails keep Pillow's default, for size). PNG is lossless at every level;
# level 1 encodes a 1024 px photo 4x faster than Pillow's default 6 for 18 % more bytes (155 -> 39 ms an image
# on the 2-core dev box, 12 photos, 3 runs each within 3 ms), and a pack's wall time includes its encodes (the
# SDXL pack's 1.25 s an image measured on an H100 counts them: they run on the host, between batches).
PNG_COMPRESS_LEVEL = 1


class ImageRefused(WorkbenchError):
    """A file that cannot be used as a photo. ``reason`` is a stable code, ``fix`` says what to do."""

    reason = "unreadable"

    def __init__(self, path: str | os.PathLike, detail: str, fix: str):
        self.path, self.detail, self.fix = Path(path), detail, fix
        super().__init__(f"{self.path}: {detail}. {fix}")


class EmptyFile(ImageRefused):
    reason = "empty"


class NotAnImage(ImageRefused):
    reason = "not_an_image"


class TruncatedImage(ImageRefused):
    reason = "truncated"


class ImageTooLarge(ImageRefused):
    reason = "too_large"


class UnsupportedFormat(ImageRefused):
    reason = "unsupported"


_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if not p.is_symlink() and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


SET_FILES = {"captions.csv", "manifest.json"}  # a set's own files (captions; what `degrade` did)


def folder_entries(folder: str | os.PathLike) -> list[Path]:
    """Everything a user put in a selfie folder that should get a verdict: photos, and also links,
    sub-folders and other files (each gets a card saying why it is not used). Hidden files, caption
    sidecars (``<photo>.txt``) and the set's own files (``SET_FILES``) are not entries."""
    folder = Path(folder)
    stems = {p.stem for p in list_images(folder)}
    entries = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in SET_FILES:
            continue
        if path.suffix.lower() == ".txt" and path.stem in stems:
            continue
        entries.append(path)
    return entries


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, max_side: int | None = None) -> Image.Image:
    """Open a photo as upright 8-bit RGB, or raise an :class:`ImageRefused` naming file and fix.

    With ``max_side`` the photo is scaled down to fit (JPEGs are decoded at 1/2, 1/4 or 1/8 scale by
    libjpeg directly, which is what makes checking 12 MP phone photos fast); ``image.info
    ["original_size"]`` keeps the upright full size either way."""
    path = Path(path)
    _check_file(path)
    image = _open(path, max_pixels)
    full = image.size
    if max_side and max(full) > max_side:
        ratio = max_side / max(full)
        image.draft("RGB", (round(full[0] * ratio), round(full[1] * ratio)))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports truncation as OSError
        raise TruncatedImage(path, f"the file is truncated or corrupt ({exc})",
                             "Upload the original photo again; the copy is incomplete.") from exc
    rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    image = to_rgb(ImageOps.exif_transpose(image))
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.BILINEAR)
    image.info["original_size"] = full[::-1] if rotated else full
    return image


class LinkRefused(ImageRefused):
    reason = "link"


def _check_file(path: Path) -> None:
    if path.is_symlink():  # a link may point anywhere on the server: never followed (check, thumbnails, references)
        raise LinkRefused(path, "this is a link, not a photo", "Copy the photo itself into the folder.")
    if not path.is_file():
        raise ImageRefused(path, "no such file", "Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(path, "the file is empty (0 bytes)", "Upload the photo again.")
    if size > MAX_BYTES:
        raise ImageTooLarge(path, f"the file is {size / 2**20:.0f} MB (limit {MAX_BYTES // 2**20} MB)",
                            "Export it as a JPEG at phone resolution.")


def _open(path: Path, max_pixels: int) -> Image.Image:
    _register_heif()
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(path, "the image header claims far too many pixels",
                            "Export it at phone resolution (under 64 MP).") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage(path, "this is not an image file (no known image format inside)",
                         "Upload a JPEG, PNG, WebP, HEIC, TIFF or BMP photo.") from exc
    except OSError as exc:
        raise TruncatedImage(path, f"the file cannot be read ({exc})", "Upload the photo again.") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedFormat(path, f"{image.format} images are not supported",
                                "Convert it to JPEG or PNG.")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(path, f"{width}x{height} is {width * height / 1e6:.0f} MP (limit "
                            f"{max_pixels / 1e6:.0f} MP)", "Export it at phone resolution.")
    if image.format not in DRAFT_FORMATS:  # decoded whole, whatever the file size: bound the memory it takes
        needed = width * height * (BYTES_PER_PIXEL.get(image.mode, 4) + 3)
        if needed > DECODE_BUDGET:
            raise ImageTooLarge(path, f"{width}x{height} {image.format} decodes to about {needed / 2**20:.0f} MB "
                                f"(limit {DECODE_BUDGET // 2**20} MB)", "Export it as a JPEG, or at phone resolution.")
    if width < 1 or height < 1:
        raise NotAnImage(path, "the image has no pixels", "Upload a real photo.")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; transparency is composited on white (how a viewer shows it)."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        array = np.asarray(image).astype(np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in {"P", "PA"}:  # palette images may carry transparency
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def encode_png(image: Image.Image, pnginfo=None) -> bytes:
    """``image`` as PNG bytes at the workbench's compression level, with ``pnginfo``'s text chunks if given."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, **({"pnginfo": pnginfo} if pnginfo else {}))
    return buffer.getvalue()
