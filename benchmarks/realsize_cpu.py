"""The random real-size chain — train, generate, score — on CPU (not in CI, minutes):
``python benchmarks/realsize_cpu.py`` runs ``realsize_chain.py --device cpu --size 128 --train-steps 2
--gen-steps 2`` (random-sd15, then random-flux-small: real width, 1 + 1 blocks, 1-layer T5-XXL). Arguments
given here follow those and win (``--size 256``, ``--families random-sd15``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realsize_chain import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[1:1] = ["--device", "cpu", "--size", "128", "--train-steps", "2", "--gen-steps", "2"]
    sys.exit(main())
