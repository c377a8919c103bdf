"""Serial vs Ray for a study on this machine: the same spec run both ways, each run a fresh process into a
fresh workspace (nothing cached between runs: no face analysis, no imports, no page-warm model), timed
end to end as a user's ``workbench study`` is; runs alternate (serial, ray, ray, serial, ...) so neither
executor always goes first (``python benchmarks/bench_ray.py [SPEC] [--workers 2] [--repeats 2]``).
``--running-cluster`` times Ray against a local cluster started once beforehand (as a user running several
studies has it) instead of one started inside each run. On a GPU cluster the same command with
``--address auto`` measures the cluster."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(executor: str, spec_name: str, seeds: int | None, workers: int, address: str | None) -> None:
    """The timed child, as ``workbench study`` runs: with Ray, connect first while the study's modules load
    in a thread; load the spec, run the study, exit."""
    sys.path.insert(0, str(ROOT))
    if executor == "ray":
        from workbench.cluster import connect

        connect(address, workers if address is None else None, imports=["workbench.studies"])
    from workbench import resources
    from workbench.config import Settings
    from workbench.studies import load_spec, run_study

    spec = load_spec(resources.spec_path(spec_name, "study"))
    if seeds:
        spec = spec.model_copy(update={"seeds": list(range(seeds))})
    home = Path(tempfile.mkdtemp(prefix=f"bench-{executor}-"))
    settings = Settings(home=home, device="cpu", offline=True)
    run_study(spec, home / "study", settings=settings, progress=False, executor=executor, address=address,
              num_cpus=workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", nargs="?", default="sampler-steps-tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--address", default=None)
    parser.add_argument("--repeats", type=int, default=2, help="runs per executor, in alternating order")
    parser.add_argument("--seeds", type=int, default=None, help="override the spec's seeds with 0..N-1 (more work "
                        "per cell)")
    parser.add_argument("--one-core-serial", action="store_true", help="also time serial on one core (one torch "
                        "thread, no face workers): the per-worker work, so Ray's fixed cost and scaling can be read "
                        "apart, as on a cluster where each worker has its own GPU")
    parser.add_argument("--running-cluster", action="store_true", help="time Ray against a local cluster started "
                        "once beforehand (`ray start --head --num-cpus W`, stopped after), as a user running several "
                        "studies has it; without it each Ray run starts (and stops) its own")
    parser.add_argument("--one", choices=["serial", "ray", "serial-1core"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import atexit
        import gc

        atexit.register(gc.freeze)  # as workbench's CLI exits
        if args.one == "serial-1core":
            import torch

            torch.set_num_threads(1)
        one_run(args.one.removesuffix("-1core"), args.spec, args.seeds, args.workers, args.address)
        return
    if args.running_cluster:
        ray_cli = str(Path(sys.executable).with_name("ray"))
        started = subprocess.run([ray_cli, "start", "--head", f"--num-cpus={args.workers}", "--include-dashboard=false",
                                  "--disable-usage-stats"], capture_output=True, text=True)
        if started.returncode:
            raise SystemExit(f"`ray start --head` failed (is a Ray already running here? `ray stop` first):\n"
                             f"{started.stderr[-800:]}")
        args.address = "auto"
    try:
        times = _time_runs(args)
    finally:
        if args.running_cluster:
            subprocess.run([ray_cli, "stop"], check=False, capture_output=True)
    serial = statistics.median(times["serial"])
    cluster = " (Ray: a local cluster started beforehand)" if args.running_cluster else ""
    print(f"{args.spec}{f' --seeds {args.seeds}' if args.seeds else ''}: each run a fresh process, end to end{cluster}")
    print("| executor | workers | runs (s) | median s | speed-up vs serial |\n|---|---|---|---|---|")
    for executor, runs in times.items():
        workers = args.workers if executor == "ray" else 1
        median = statistics.median(runs)
        print(f"| {executor} | {workers} | {', '.join(f'{t:.1f}' for t in runs)} | {median:.1f} | "
              f"{serial / median:.2f} |")
    print(paired_reading(times["serial"], times["ray"]))


def paired_reading(serial: list[float], ray: list[float]) -> str:
    """Run i of each executor ran back to back (alternating which went first), so they pair: the mean
    saving with its 95% t-interval, the ratio of means, and a two-sided sign test."""
    from math import comb

    from scipy import stats

    saved = [a - b for a, b in zip(serial, ray, strict=True)]
    n, mean = len(saved), statistics.fmean(saved)
    if n < 2:
        return f"Ray saved {mean:.2f} s (one pair: no interval)"
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(saved) / n ** 0.5
    faster = sum(d > 0 for d in saved)
    tail = sum(comb(n, k) for k in range(min(faster, n - faster) + 1)) / 2 ** n
    verdict = "faster" if mean - half > 0 else "slower" if mean + half < 0 else "not shown different"
    return (f"paired (n = {n}): Ray saved {mean:.2f} s per run, 95% t-interval {mean - half:.2f} to "
            f"{mean + half:.2f} s; ratio of means {statistics.fmean(serial) / statistics.fmean(ray):.3f}; "
            f"Ray faster in {faster} of {n} "
            f"(sign test p = {min(1.0, 2 * tail):.3f}): {verdict}")


def _time_runs(args) -> dict[str, list[float]]:
    runs = ("serial", "ray", "serial-1core") if args.one_core_serial else ("serial", "ray")
    order = [runs if i % 2 == 0 else runs[::-1] for i in range(args.repeats)]
    times: dict[str, list[float]] = {run: [] for run in runs}
    for executor in (e for pair in order for e in pair):
        command = [sys.executable, __file__, args.spec, "--one", executor, "--workers", str(args.workers)]
        command += [f"--seeds={args.seeds}"] if args.seeds else []
        command += ["--address", args.address] if args.address else []
        env = {**os.environ, **({"WORKBENCH_FACE_WORKERS": "1", "OMP_NUM_THREADS": "1"}
                                if executor == "serial-1core" else {})}
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times[executor].append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    main()
