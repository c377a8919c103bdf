"""Serving the app for browser tests: a real ``workbench app`` process on a free port, and Debian's Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "datasets" / "sample-selfies"
ARTIFACTS = Path(os.environ.get("WORKBENCH_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "app"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(tmp_path_factory, *args: str):
    """Start ``workbench app ARGS`` in its own home; yield its URL; stop it."""
    port = free_port()
    home = tmp_path_factory.mktemp("app-home")
    env = {**os.environ, "WORKBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "WORKBENCH_DEVICE": "cpu",
           "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost",
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio-temp"))}
    log = open(tmp_path_factory.mktemp("app-log") / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "workbench.cli", "app", "--port", str(port), *args], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited: {Path(log.name).read_text()[-3000:]}") from None
            time.sleep(0.5)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)


def compare_first_runs(page) -> None:
    """On the Compare tab: refresh, pick the newest run on both sides, compare."""
    page.get_by_role("tab", name="Compare").click()
    page.locator("#refresh-compare").click()
    for box in ("#compare-a", "#compare-b"):
        page.locator(f"{box} input").click()
        page.get_by_role("option").first.click()
    page.locator("#compare-button").click()
