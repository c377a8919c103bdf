"""Contact sheets: one image per pack, rows = prompts, columns = sampler/steps/seed."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from ..images import encode_png
from ..store import atomic_write_bytes


def contact_sheets(run, cell: int = 128) -> list[Path]:
    """One contact sheet (PNG grid of thumbnails) per pack of a run; returns their paths."""
    sheets = []
    for pack, rows in run.table.groupby("pack"):
        columns = rows[["sampler", "steps", "seed"]].drop_duplicates().values.tolist()
        prompts = list(dict.fromkeys(rows["prompt_id"]))
        sheet = Image.new("RGB", (cell * len(columns), (cell + 14) * len(prompts)), "white")
        draw = ImageDraw.Draw(sheet)
        for r, prompt in enumerate(prompts):
            for c, (sampler, steps, seed) in enumerate(columns):
                match = rows[(rows.prompt_id == prompt) & (rows.sampler == sampler) & (rows.steps == steps)
                             & (rows.seed == seed)]
                if match.empty:
                    continue
                with Image.open(run.path / match.iloc[0]["path"]) as image:
                    sheet.paste(image.convert("RGB").resize((cell, cell)), (c * cell, r * (cell + 14) + 14))
                draw.text((c * cell + 2, r * (cell + 14)), f"{prompt[:10]} {sampler} {steps}s s{seed}", fill="black")
        path = run.path / f"contact-{pack}.png"
        atomic_write_bytes(path, encode_png(sheet))
        sheets.append(path)
    return sheets
