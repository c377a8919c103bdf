"""The Gradio app for product staff: the tabs in ``TABS``, each a thin caller of the public API.
``workbench app`` serves it on 127.0.0.1; a non-loopback host or ``--share`` needs ``--auth``."""

from __future__ import annotations

import ipaddress

from workbench import ConfigError, Settings

# The tabs, in page order: title -> module (``app/<module>.py``, whose ``build(settings, shared) -> dict``
# draws it; what it returns joins ``shared`` for the tabs after it, and its ``load`` entries run on page load).
TABS = {"Selfies": "selfies_tab", "Train": "train_tab", "Packs": "packs_tab", "Evaluate": "evaluate_tab",
        "Compare": "compare_tab", "Jobs": "jobs_tab", "Delete my data": "data_tab"}


def build_app(settings: Settings | None = None):
    import importlib

    import gradio as gr

    settings = settings or Settings()
    # Gradio's own temporary files (uploads, downloads) older than an hour are removed every hour.
    with gr.Blocks(title="Likeness Workbench", delete_cache=(3600, 3600)) as app:
        gr.Markdown("# Likeness Workbench\nCheck selfies → train a likeness → generate packs → evaluate.")
        shared: dict = {}
        loads = []
        for module in TABS.values():
            built = importlib.import_module(f"{__name__}.{module}").build(settings, shared) or {}
            loads += built.pop("load", [])
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


def parse_auth(auth: str | None, host: str, share: bool) -> tuple[str, str] | None:
    """``USER:PASS``. Refuses to expose the app (non-loopback host, or a public share link) without it."""
    if not auth:
        if share or not is_loopback(host):
            where = "a public share link" if share else f"host {host}"
            raise ConfigError(f"refusing to serve on {where} without --auth USER:PASS: anyone who can reach it "
                              "could read the selfies. Add --auth, or use --host 127.0.0.1.")
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must be USER:PASS (both non-empty).")
    return user, password


def launch(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
           share: bool = False, max_file_size: str = "25mb") -> None:
    credentials = parse_auth(auth, host, share)
    app = build_app(settings)
    app.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, auth=credentials, share=share,
                                                 show_error=True, max_file_size=max_file_size)
