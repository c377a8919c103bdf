"""One way into Ray for studies and suites: connect to a running cluster (``address``: ``auto``,
``ray://HOST:PORT``, or with none the cluster ``ray start`` left on this machine, as Ray itself does),
else start a local Ray here.

Starting a local Ray is ~5 s of waiting for its processes, so ``connect(imports=...)`` has the modules a
study's driver needs imported in a background thread meanwhile — started once ``ray`` itself is imported,
so the two imports do not take turns on the GIL and the workers are asked for as early as possible. (The
other way round, Ray started from a background thread, fails: Ray ties its processes' lives to the
thread that started them.)
On connecting, one short task per CPU (up to ``warm``) starts a worker process that imports the
workbench's task code (torch, diffusers) while the driver is still busy, and the job's later tasks reuse
those workers. (Ray's ``worker_process_setup_hook`` does not do this: with it no worker starts before the
first task, and each started ~6 s slower here.) This module imports nothing heavy itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

WARM_WORKERS = 8  # a study's default: more would hold memory on a big node for seconds saved once


def preload(*modules: str) -> None:
    """Import ``modules`` in a background thread (an import elsewhere meanwhile waits for it, as Python's
    import locks make it)."""
    threading.Thread(target=lambda: [importlib.import_module(m) for m in modules], name="preload",
                     daemon=True).start()


def connect(address: str | None = None, num_cpus: int | None = None, warm: int = WARM_WORKERS,
            imports: Sequence[str] = ()) -> Any:
    """The ``ray`` module, connected (once per process). ``num_cpus`` only sizes a local Ray started here;
    ``warm``: at most this many workers start importing now (a suite, one task, warms one); ``imports``:
    modules this process loads in a background thread (``preload``) while Ray connects, and the warm workers
    import too."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--executor ray needs Ray: `pip install 'likeness-workbench[cluster]'`.") from exc
    if imports:
        preload(*imports)
    if not ray.is_initialized():
        try:
            ray.init(address=address, num_cpus=num_cpus if address is None else None, ignore_reinit_error=True,
                     log_to_driver=False, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"at {address!r}" if address else "on this machine"
            raise ConfigError(f"could not reach Ray {where}: {str(exc).splitlines()[0][:300]}. Pass --address auto "
                              "(a Ray started here with `ray start --head`) or ray://HOST:10001 (a cluster's "
                              "client port), or leave --address out to start a local Ray.") from exc
        warm_up = ray.remote(warm_worker).options(num_cpus=1)
        for _ in range(min(warm, int(ray.available_resources().get("CPU", 0)))):
            warm_up.remote(list(imports))  # not awaited: nothing waits on a warm-up; one that fails costs nothing
    return ray


def warm_worker(modules: Sequence[str] = ()) -> None:
    """What a cell or suite task imports first: diffusers, and the modules the driver named (the study's or
    the suite's runner), so this infrastructure module depends on none of them."""
    from diffusers import StableDiffusionPipeline  # noqa: F401  (loaded lazily; brings what every family's needs)

    for module in modules:
        importlib.import_module(module)
