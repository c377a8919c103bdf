"""The Gradio app for product staff: the tabs in ``TABS``, each a thin caller of the public API.
``workbench app`` serves it on 127.0.0.1; a non-loopback host or ``--share`` needs ``--auth``."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from workbench import ConfigError, Settings, folder_name

# The tabs, in page order: title -> module (``app/<module>.py``, whose ``build(settings, shared) -> dict``
# draws it; what it returns joins ``shared`` for the tabs after it, and its ``load`` entries run on page load).
TABS = {"Selfies": "selfies_tab", "Train": "train_tab", "Packs": "packs_tab", "Evaluate": "evaluate_tab",
        "Compare": "compare_tab", "Jobs": "jobs_tab", "Delete my data": "data_tab"}


def build_app(settings: Settings | None = None, max_photo_mb: float = 25):
    """The page. ``max_photo_mb``: the largest photo the Selfies tab takes (a larger one is refused alone)."""
    import importlib

    import gradio as gr

    settings = settings or Settings()
    # Gradio's own temporary files (uploads, downloads) older than an hour are removed every hour.
    with gr.Blocks(title="Likeness Workbench", delete_cache=(3600, 3600)) as app:
        gr.Markdown("# Likeness Workbench\nCheck selfies → train a likeness → generate packs → evaluate.")
        # what a tab returns joins ``shared``; its "load" entries run on page load, and its "cleared_on_delete"
        # components are emptied by "Delete my data"
        shared: dict = {"max_photo_bytes": int(max_photo_mb * 2**20), "cleared_on_delete": []}
        loads = []
        for module in TABS.values():
            built = importlib.import_module(f"{__name__}.{module}").build(settings, shared) or {}
            loads += built.pop("load", [])
            shared["cleared_on_delete"] += built.pop("cleared_on_delete", [])
            shared.update(built)
        for fn, outputs in loads:  # a reload reattaches to the user's running jobs
            app.load(fn, None, outputs)
    for fn in app.fns.values():  # no endpoint schemas in the page: the UI is the only client
        fn.api_visibility = "private"
    return app


def is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _account(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user.strip() or not password:
        raise ConfigError(f"{where}: an account is USER:PASS (both non-empty).")
    return user.strip(), password


def read_auth_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    """One ``USER:PASS`` per line (``#`` comments and blank lines skipped). The file holds passwords, so
    other people on the machine must not be able to read it (``chmod 600``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such auth file.")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: other users of this machine can read these passwords; run chmod 600 {path}.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc}).") from exc
    return [_account(line.strip(), f"{path}:{number}") for number, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]


def parse_auth(auth: str | list[str] | None, host: str, share: bool,
               auth_file: str | os.PathLike | None = None) -> list[tuple[str, str]] | None:
    """The accounts: each ``--auth USER:PASS`` (repeatable) and every line of ``--auth-file``. A name given
    twice is refused (a silently dropped account is a person locked out). Refuses to expose the app
    (non-loopback host, or a public share link) without any."""
    given = [auth] if isinstance(auth, str) else list(auth or [])
    accounts = [_account(a, "--auth") for a in given] + (read_auth_file(auth_file) if auth_file else [])
    if not accounts:
        if share or not is_loopback(host):
            where = "a public share link" if share else f"host {host}"
            raise ConfigError(f"refusing to serve on {where} without --auth USER:PASS: anyone who can reach it "
                              "could read the selfies. Add --auth (once per person) or --auth-file, or use "
                              "--host 127.0.0.1.")
        return None
    names = [user for user, _ in accounts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"account {', '.join(repr(n) for n in twice)} is given more than once; give each person "
                          "one account.")
    folders = {}
    for user in names:  # two names that would share a workspace folder are refused, never merged
        folders.setdefault(folder_name(user), []).append(user)
    clashes = [users for users in folders.values() if len(users) > 1]
    if clashes:
        raise ConfigError(f"accounts {' and '.join(repr(u) for u in clashes[0])} would share a workspace; rename one.")
    return accounts


def launch(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | list[str] | None = None,
           share: bool = False, max_photo_mb: float = 25, auth_file: str | os.PathLike | None = None,
           turn_seconds: float | None = None) -> None:
    from workbench import configure_jobs

    credentials = parse_auth(auth, host, share, auth_file)
    configure_jobs(turn_seconds=turn_seconds)
    serve(build_app(settings, max_photo_mb), server_name=host, server_port=port, auth=credentials, share=share,
          max_photo_mb=max_photo_mb)


def serve(app, max_photo_mb: float = 25, **launch: Any):
    """Launch ``app`` with what the workbench needs around Gradio: every upload recorded with the person who
    sent it (uploads.py), handlers that run side by side (the long work is in jobs, which take turns), and
    an upload cap well above a photo's so that one large file is refused alone, by the Selfies tab, not the
    whole upload by the browser."""
    from starlette.middleware import Middleware

    from .uploads import RecordUploads

    return app.queue(default_concurrency_limit=8).launch(
        app_kwargs={"middleware": [Middleware(RecordUploads)]}, max_file_size=f"{int(8 * max_photo_mb)}mb",
        show_error=True, footer_links=["settings"], **launch)  # no "Use via API": the page is the only client
