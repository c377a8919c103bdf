"""Where long work may stop: a check the work calls between denoising steps, probe images, class images and
scored images. A job (jobs.py) installs its check for the thread that runs it, so a cancel (or a pause for
another person's turn) lands within one step of any image at any step count. Outside a job nothing is
installed and the check costs one attribute read; the CLI stops on Ctrl-C as before."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()


@contextmanager
def stop_check(check: Callable[[], None]) -> Iterator[None]:
    """Run the block with ``check`` as this thread's stop check (it raises to stop the work)."""
    previous = getattr(_local, "check", None)
    _local.check = check
    try:
        yield
    finally:
        _local.check = previous


def check_stop() -> None:
    """Raise if the work running in this thread was asked to stop; nothing otherwise."""
    check = getattr(_local, "check", None)
    if check is not None:
        check()


def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
    """A diffusers ``callback_on_step_end``: the stop check after every denoising step."""
    check_stop()
    return callback_kwargs
