"""Serial vs Ray for a study on this machine: the same spec run both ways into fresh workspaces, wall
time for each and the ratio (``python benchmarks/bench_ray.py [SPEC] [--workers 2]``). On a GPU cluster
the same command with ``--address auto`` measures the cluster."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", nargs="?", default="sampler-steps-tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", default=None)
    parser.add_argument("--seeds", type=int, default=None, help="override the spec's seeds with 0..N-1 (more work "
                        "per cell)")
    args = parser.parse_args()
    import ray

    from workbench import resources
    from workbench.config import Settings
    from workbench.studies import load_spec, run_study

    spec = load_spec(resources.spec_path(args.spec, "study"))
    if args.seeds:
        spec = spec.model_copy(update={"seeds": list(range(args.seeds))})
    rows = []
    for executor in ("serial", "ray"):
        home = Path(tempfile.mkdtemp(prefix=f"bench-{executor}-"))
        settings = Settings(home=home, device="cpu", offline=True)
        started = time.perf_counter()
        run_study(spec, home / "study", settings=settings, progress=False, executor=executor, address=args.address,
                  num_cpus=args.workers)
        rows.append((executor, time.perf_counter() - started))
        if executor == "ray":
            ray.shutdown()
    serial = rows[0][1]
    print("| executor | workers | wall s | speed-up vs serial |\n|---|---|---|---|")
    for executor, seconds in rows:
        workers = 1 if executor == "serial" else args.workers
        print(f"| {executor} | {workers} | {seconds:.1f} | {serial / seconds:.2f} |")


if __name__ == "__main__":
    main()
