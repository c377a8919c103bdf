"""What a result was made with, beyond package versions: the workbench's git commit, Python, the GPU
and CUDA, input photo hashes, model revisions and recognizer model hashes. Recorded in every manifest
so a reviewer can tell two runs apart by what they were run with."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> str:
    """One sha256 over several files' hashes (sorted by name): a model made of several files."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode() + b"\0" + bytes.fromhex(_cached_sha256(str(path), path.stat().st_size,
                                                                                 path.stat().st_mtime_ns)))
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _cached_sha256(path: str, size: int, mtime: int) -> str:
    return file_sha256(path)


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The workbench's commit when it runs from a checkout (``+dirty`` with uncommitted changes)."""
    if not (CHECKOUT / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment() -> dict[str, str | None]:
    """Python, platform, git commit, and (when this stage loaded torch) torch's CUDA and the GPU."""
    env: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform(),
                                  "workbench_commit": git_commit()}
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return env
