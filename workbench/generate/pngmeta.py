"""PNG metadata: A1111's ``parameters`` text (what ComfyUI/A1111/Civitai read) plus a JSON chunk."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..images import encode_png

JSON_KEY = "workbench"


def a1111_parameters(p: dict[str, Any]) -> str:
    """``prompt\\nNegative prompt: ...\\nSteps: 20, Sampler: ..., CFG scale: ..., Seed: ..., Size: WxH, ...``."""
    tail = [f"Steps: {p['steps']}", f"Sampler: {p['sampler_a1111']}", f"CFG scale: {p['guidance']}",
            f"Seed: {p['seed']}", f"Size: {p['width']}x{p['height']}", f"Model: {p['model']}"]
    if p.get("lora"):
        tail.append(f"Lora: {p['lora']}")
    return f"{p['prompt']}\nNegative prompt: {p['negative']}\n" + ", ".join(tail)


def png_bytes(image: Image.Image, params: dict[str, Any]) -> bytes:
    info = PngInfo()
    info.add_text("parameters", a1111_parameters(params))
    info.add_text(JSON_KEY, json.dumps(params, sort_keys=True))
    return encode_png(image, info)


def read_params(path) -> dict[str, Any]:
    """The JSON parameters written by :func:`png_bytes` (Pillow exposes text chunks in ``.text``)."""
    with Image.open(path) as image:
        return json.loads(image.text[JSON_KEY])


def parse_a1111(text: str) -> dict[str, str]:
    """Parse an A1111 ``parameters`` string back into prompt, negative and the key/value tail."""
    prompt, _, rest = text.partition("\nNegative prompt: ")
    negative, _, tail = rest.partition("\n")
    fields = dict(item.split(": ", 1) for item in tail.split(", ") if ": " in item)
    return {"prompt": prompt, "negative": negative, **fields}
