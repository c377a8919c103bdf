"""Face analysis throughput (faces/s and photos/s) per backend on the bundled photos.

    .venv/bin/python benchmarks/bench_faces.py
"""

from __future__ import annotations

import time
from pathlib import Path

from workbench.faces import RECOGNIZERS
from workbench.faces.dlib_backend import DlibAnalyzer
from workbench.images import list_images, load_image

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "sample-selfies"
BACKENDS = {"dlib": DlibAnalyzer}


def main() -> None:
    photos = [load_image(p) for d in sorted(SAMPLES.iterdir()) if d.is_dir() for p in list_images(d)]
    print(f"{len(photos)} photos, median size {sorted(max(p.size) for p in photos)[len(photos) // 2]} px")
    print(f"{'backend':10} {'photos/s':>9} {'faces/s':>8}")
    for name in RECOGNIZERS:
        analyzer = BACKENDS[name]()  # uncached: measure the backend itself
        analyzer.analyze(photos[0])
        started = time.perf_counter()
        faces = sum(len(analyzer.analyze(p)) for p in photos)
        seconds = time.perf_counter() - started
        print(f"{name:10} {len(photos) / seconds:9.2f} {faces / seconds:8.2f}")


if __name__ == "__main__":
    main()
