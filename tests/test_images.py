"""Every format and refusal of workbench.images, on files the tests make themselves."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from workbench.images import EmptyFile, ImageTooLarge, NotAnImage, TruncatedImage, list_images, load_image


def _gradient(w=64, h=48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(x, (h, 1))] * 3, axis=-1), "RGB")


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif"),
                                        ("BMP", ".bmp")])
def test_common_formats_load_as_rgb(tmp_path, fmt, suffix):
    path = tmp_path / f"photo{suffix}"
    _gradient().save(path, format=fmt)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)


def test_heic_loads(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    path = tmp_path / "photo.heic"
    _gradient(128, 96).save(path, format="HEIF", quality=90)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (128, 96)
    assert abs(int(np.asarray(image)[50, 120, 0]) - 242) < 20  # pixels survive, not just the header


def test_exif_orientation_is_applied(tmp_path):
    image = _gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    assert Image.open(path).size == (80, 40)
    assert load_image(path).size == (40, 80)


def test_cmyk_is_converted(tmp_path):
    path = tmp_path / "cmyk.jpg"
    _gradient().convert("CMYK").save(path)
    assert Image.open(path).mode == "CMYK"
    assert load_image(path).mode == "RGB"


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    values = np.full((20, 20), 32768, dtype=np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(load_image(path))
    assert abs(int(pixels[0, 0, 0]) - 128) <= 1  # mid-grey, not white


def test_rgba_and_palette_composite_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    assert tuple(np.asarray(load_image(tmp_path / "clear.png"))[0, 0]) == (255, 255, 255)
    Image.new("LA", (10, 10), (0, 255)).save(tmp_path / "la.png")
    assert tuple(np.asarray(load_image(tmp_path / "la.png"))[0, 0]) == (0, 0, 0)
    _gradient().convert("P").save(tmp_path / "pal.png")
    assert load_image(tmp_path / "pal.png").mode == "RGB"
    _gradient().convert("L").save(tmp_path / "gray.png")
    assert load_image(tmp_path / "gray.png").mode == "RGB"


def test_truncated_jpeg_is_refused(tmp_path):
    path = tmp_path / "cut.jpg"
    _gradient(256, 256).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(TruncatedImage) as err:
        load_image(path)
    assert "cut.jpg" in str(err.value) and err.value.reason == "truncated"


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(EmptyFile, match="empty.jpg"):
        load_image(path)


def test_text_named_jpg_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels")
    with pytest.raises(NotAnImage) as err:
        load_image(path)
    assert "notes.jpg" in str(err.value) and "JPEG" in err.value.fix


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20_000, 20_000))
    with pytest.raises(ImageTooLarge, match="bomb.png"):
        load_image(path)


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "big.png"
    _gradient(200, 200).save(path)
    with pytest.raises(ImageTooLarge, match="200x200"):
        load_image(path, max_pixels=10_000)


def test_list_images_filters_by_suffix(tmp_path):
    for name in ("b.JPG", "a.png", "c.txt", "d.heic"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "d.heic"]


def test_rendered_pngs_are_lossless_and_keep_their_text(faces_dir):
    """The workbench writes its renders at a fast zlib level: the same pixels come back, the metadata too,
    and the file is a plain PNG any viewer opens."""
    import io

    from PIL.PngImagePlugin import PngInfo

    from workbench.images import encode_png

    photo = load_image(next(faces_dir.rglob("*.jpg"))).resize((1024, 1024))
    info = PngInfo()
    info.add_text("parameters", "a photo of ohwx person")
    data = encode_png(photo, info)
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "PNG" and back.text["parameters"] == "a photo of ohwx person"
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(photo))
    default = io.BytesIO()
    photo.save(default, format="PNG")
    assert len(default.getvalue()) < len(data) < 2 * len(default.getvalue())  # the faster level: bigger, not huge
