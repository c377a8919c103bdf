"""Face analysis throughput (photos/s, faces/s) per backend on the bundled photos, on this machine.

    .venv/bin/python benchmarks/bench_faces.py

The insightface row uses the real pack when one is on disk; otherwise it runs the miniature test pack
(same signatures, tiny networks), which measures the pre/post-processing cost only: say so when quoting.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from workbench.errors import ModelNotAvailable
from workbench.faces.dlib_backend import DlibAnalyzer
from workbench.faces.insightface_backend import InsightFaceAnalyzer
from workbench.images import list_images, load_image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "datasets" / "sample-selfies"


def _backends(scratch: Path):
    yield "dlib (HOG + ResNet)", DlibAnalyzer()
    try:
        yield "insightface buffalo_l", InsightFaceAnalyzer("buffalo_l")
    except ModelNotAvailable:
        sys.path.insert(0, str(ROOT / "tests"))
        from insightface_pack import make_pack

        yield "insightface (miniature pack: overhead only)", InsightFaceAnalyzer(str(make_pack(scratch / "pack")))


def main() -> None:
    from workbench.faces.parallel import worker_count

    photos = [load_image(p) for d in sorted(SAMPLES.iterdir()) if d.is_dir() for p in list_images(d)]
    print(f"{len(photos)} photos, median size {sorted(max(p.size) for p in photos)[len(photos) // 2]} px, "
          f"{worker_count(len(photos))} face worker(s) for a batch")
    print(f"{'backend':45} {'entry':22} {'photos/s':>9} {'faces/s':>8}")
    with tempfile.TemporaryDirectory() as scratch:
        for name, analyzer in _backends(Path(scratch)):  # uncached: measure the backend itself
            analyzer.analyze(photos[0])
            analyzer.analyze_many(photos[:4])  # workers started and warm: a long-lived process pays this once
            for entry, run in (("analyze, one at a time", lambda a: [a.analyze(p) for p in photos]),
                               ("analyze_many (batch)", lambda a: a.analyze_many(photos))):
                started = time.perf_counter()
                faces = sum(len(f) for f in run(analyzer))
                seconds = time.perf_counter() - started
                print(f"{name:45} {entry:22} {len(photos) / seconds:9.2f} {faces / seconds:8.2f}")


if __name__ == "__main__":
    main()
