"""Face analysis on every core, for backends whose native code holds the GIL (dlib): worker processes,
each with its own copy of the backend, started on first use and kept for the life of this process.

The workers are plain ``python -m workbench.faces.parallel`` processes fed through pipes, not a
multiprocessing pool: a forked child of a process with OpenMP or torch threads deadlocked here, and a
spawned one re-runs the caller's script unless it has a ``__main__`` guard. Images travel as uint8
arrays (at most the analysis size); faces come back as ``Face`` objects. ``WORKBENCH_FACE_WORKERS`` sets
the number of workers (1 turns them off); by default one per core.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from typing import Any

import numpy as np
from PIL import Image

WORKERS_ENV = "WORKBENCH_FACE_WORKERS"
MIN_PER_WORKER = 2  # fewer images than this per worker: the transfer costs more than it saves
_workers: dict[tuple, list[subprocess.Popen]] = {}
_lock = threading.Lock()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(images: int) -> int:
    """Workers worth using for ``images`` images (1: analyse in this process)."""
    configured = os.environ.get(WORKERS_ENV)
    workers = int(configured) if configured else _cores()
    return max(1, min(workers, images // MIN_PER_WORKER))


def _send(stream, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the face worker stopped")
    return pickle.loads(stream.read(struct.unpack("<Q", header)[0]))


def _start(factory: tuple[str, str, dict], workers: int) -> subprocess.Popen:
    # Each worker's thread pools (OpenCV's, onnxruntime's via OMP_NUM_THREADS, BLAS) get its share of the
    # cores: N workers each starting N threads oversubscribe them. A count the caller set is kept.
    threads = str(max(1, _cores() // workers))
    env = {name: threads for name in ("OPENCV_FOR_THREADS_NUM", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env = {**env, **os.environ, WORKERS_ENV: "1"}
    worker = subprocess.Popen([sys.executable, "-m", "workbench.faces.parallel"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env)
    _send(worker.stdin, factory)
    return worker


def _stop_all() -> None:
    for workers in _workers.values():
        for worker in workers:
            worker.kill()


atexit.register(_stop_all)


def analyze_in_workers(factory: tuple[str, str, dict], images: list[Image.Image], workers: int) -> list:
    """``factory``: (module, class name, keyword arguments) that builds the backend in each worker.
    Results come back in the order of ``images``; a worker's error is raised here."""
    key = (factory[0], factory[1], tuple(sorted(factory[2].items())), workers)
    with _lock:  # one batch at a time per worker set (the app's job thread and a notebook may share them)
        pool = _workers.get(key)
        if pool is None or any(w.poll() is not None for w in pool):
            pool = _workers[key] = [_start(factory, workers) for _ in range(workers)]
        tasks: queue.Queue = queue.Queue()
        for index, image in enumerate(images):
            tasks.put((index, np.asarray(image.convert("RGB"))))
        results: list[Any] = [None] * len(images)

        def drive(slot: int) -> None:
            while True:
                try:
                    index, pixels = tasks.get_nowait()
                except queue.Empty:
                    return
                for attempt in range(2):  # a worker that died (killed, out of memory) is replaced once
                    try:
                        _send(pool[slot].stdin, pixels)
                        results[index] = _receive(pool[slot].stdout)
                        break
                    except (OSError, EOFError) as exc:
                        pool[slot].kill()
                        results[index] = exc
                        if attempt == 0:
                            pool[slot] = _start(factory, workers)

        threads = [threading.Thread(target=drive, args=(slot,), daemon=True) for slot in range(len(pool))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise RuntimeError(f"face analysis worker failed: {result}") from result
    return results


def _serve() -> None:
    """A worker: build the backend, then answer one image with its faces until stdin closes."""
    import importlib

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library that prints must not corrupt the reply stream
    module, name, kwargs = _receive(stdin)
    backend = getattr(importlib.import_module(module), name)(**kwargs)
    while True:
        try:
            pixels = _receive(stdin)
        except EOFError:
            return
        try:
            _send(stdout, backend.analyze(Image.fromarray(pixels)))
        except Exception as exc:  # the caller raises it, naming the worker
            _send(stdout, RuntimeError(f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    _serve()
