"""Upload gate throughput: 30 phone-sized photos (12 MP JPEGs) through ``check_selfies`` on this machine.

    .venv/bin/python benchmarks/bench_check.py

The photos are the bundled frontal selfies upscaled to 4000x3000 and saved at JPEG quality 92, so the
decode, resize and face work are what a phone upload costs (the content is not new).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from PIL import Image

from workbench.faces.dlib_backend import DlibAnalyzer
from workbench.images import list_images, load_image
from workbench.selfies import check_selfies

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "sample-selfies"
SOURCES = ["lisa_debruine", "london_004", "london_005", "london_006", "london_025", "aws_rek_subject1"]


def main(count: int = 30) -> None:
    print(f"{'set':38} {'photos':>6} {'size':>10} {'seconds':>8} {'photos/s':>9}")
    frontal = [p for name in SOURCES[:-1] for p in list_images(SAMPLES / name)]
    mixed = [p for name in SOURCES for p in list_images(SAMPLES / name)]
    run("frontal photos", frontal, count)
    run("with profiles / pitch (CNN fallback)", mixed, count)


def run(label: str, sources: list[Path], count: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for i in range(count):
            image = load_image(sources[i % len(sources)])
            scale = 3000 / image.height  # the whole photo, letterboxed on a 4000x3000 canvas
            big = Image.new("RGB", (4000, 3000), (128, 128, 128))
            resized = image.resize((round(image.width * scale), 3000))
            big.paste(resized, ((4000 - resized.width) // 2, 0))
            big.save(folder / f"{i:02d}.jpg", quality=92)
        from workbench.faces import CachedAnalyzer

        analyzer = CachedAnalyzer(DlibAnalyzer())  # fresh cache: nothing is measured twice
        started = time.perf_counter()
        check_selfies(folder, analyzer=analyzer, progress=False)
        seconds = time.perf_counter() - started
    print(f"{label:38} {count:6d} {'4000x3000':>10} {seconds:8.1f} {count / seconds:9.2f}")


if __name__ == "__main__":
    main()
