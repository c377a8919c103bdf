"""Who uploaded which file. Gradio keeps every upload in one temporary folder shared by everyone on the
server and accepts any path inside it in a request, so a person could name another person's upload (or a
result zip) and have the app copy it. ``RecordUploads`` sits in front of Gradio's upload route and writes
down, for each file it stores, the signed-in person who sent it; the Selfies tab takes only files this
person uploaded, and deletes only those (files the app itself created for them)."""

from __future__ import annotations

import contextlib
import json
import threading
from http.cookies import SimpleCookie
from pathlib import Path

LOCAL = "local"  # the one person of an app served without --auth (its workspace is users/local)


class Ledger:
    """Upload path -> the person who uploaded it, for this server process."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, person: str, paths: list[str]) -> None:
        with self._lock:
            for path in paths:
                self._owner[str(Path(path).resolve())] = person

    def owner(self, path: str | Path) -> str | None:
        with self._lock:
            return self._owner.get(str(Path(path).resolve()))

    def of(self, person: str) -> list[Path]:
        with self._lock:
            return [Path(p) for p, who in self._owner.items() if who == person]

    def release(self, person: str, paths: list[str | Path]) -> None:
        """Delete this person's uploads among ``paths`` (and Gradio's folder for each, when empty); anything
        else is left alone."""
        with self._lock:
            for path in paths:
                key = str(Path(path).resolve())
                if self._owner.get(key) != person:
                    continue
                del self._owner[key]
                file = Path(key)
                file.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # Gradio keeps each upload in a folder of its own
                    file.parent.rmdir()


LEDGER = Ledger()


def person_of(scope: dict) -> str:
    """The signed-in person of a request (Gradio's session cookie), or ``LOCAL`` without --auth."""
    app = scope.get("app")
    if app is None or getattr(app, "auth", None) is None:
        return LOCAL
    cookies = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies.load(value.decode("latin-1"))
    for name in (f"access-token-{app.cookie_id}", f"access-token-unsecure-{app.cookie_id}"):
        if name in cookies and (user := app.tokens.get(cookies[name].value)):
            return user
    return ""  # not signed in: Gradio refuses the upload itself


class RecordUploads:
    """ASGI middleware: after Gradio's ``/upload`` answers, record who uploaded each path it returned."""

    def __init__(self, app, ledger: Ledger = LEDGER):
        self.app, self.ledger = app, ledger

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/gradio_api/upload"):
            return await self.app(scope, receive, send)
        status, body = [0], []

        async def listen(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, listen)
        person = person_of(scope)
        if status[0] == 200 and person:
            try:
                paths = json.loads(b"".join(body))
            except ValueError:
                return
            if isinstance(paths, list):
                self.ledger.record(person, [p for p in paths if isinstance(p, str)])
