"""The check report as one self-contained HTML page: a card per photo (thumbnail, status, flags,
advice) and the set verdict with its suggestions. Thumbnails are embedded, so the file can be mailed."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from ..images import ImageRefused, load_image
from ..store import atomic_write_text

COLOURS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}
STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:8px;padding:8px}.card img{width:100%;border-radius:4px}
.status{font-weight:600;text-transform:uppercase}.flags{font-family:monospace;font-size:12px}
ul{padding-left:18px;margin:4px 0}li{font-size:13px}"""


def _thumbnail(path: Path, side: int = 256) -> str:
    try:
        image = load_image(path)
    except ImageRefused:
        return ""
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def render(report) -> str:
    cards = []
    for photo in report.photos:
        # never a picture of what the check refused (a link, a non-photo): only what the set owns is shown
        src = "" if "unreadable" in photo.flags else _thumbnail(report.folder / photo.file)
        image = f'<img src="{src}" alt="{html.escape(photo.file)}">' if src else "<p>(cannot be shown)</p>"
        advice = "".join(f"<li>{html.escape(a)}</li>" for a in photo.advice)
        cards.append(f'<div class="card">{image}<div><b>{html.escape(photo.file)}</b> '
                     f'<span class="status" style="color:{COLOURS[photo.status]}">{photo.status}</span></div>'
                     f'<div class="flags">{html.escape(", ".join(photo.flags))}</div><ul>{advice}</ul></div>')
    found = report.set
    suggestions = "".join(f"<li>{html.escape(a)}</li>" for a in found["advice"])
    groups = "".join(f"<li>{html.escape(', '.join(g))}</li>" for g in found["duplicates"]) or "<li>none</li>"
    intruders = "".join(f"<li>{html.escape(i['file'])} (similarity {i['score']:.2f})</li>"
                        for i in found["intruders"]) or "<li>none</li>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Selfie check</title><style>{STYLE}</style>"
            f"</head><body><h1>Selfie check: {html.escape(found['verdict'].replace('_', ' '))}</h1>"
            f"<p>{found['usable']} of {found.get('photos', found['count'])} photos usable for training. Recognizer: "
            f"{html.escape(report.recognizer)}.</p><h2>Suggestions</h2><ul>{suggestions or '<li>none</li>'}</ul>"
            f"<h2>Near-duplicates</h2><ul>{groups}</ul><h2>Probably someone else</h2><ul>{intruders}</ul>"
            f"<h2>Photos</h2><div class='grid'>{''.join(cards)}</div></body></html>")


def write_html(report, path: str | os.PathLike) -> Path:
    """The check as one self-contained HTML page (thumbnails embedded, so it can be mailed)."""
    return atomic_write_text(path, render(report))
