"""The Likeness: a directory with the LoRA, its card (``likeness.json``) and validation images."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

LORA_FILE = "lora.safetensors"
KOHYA_FILE = "lora_kohya.safetensors"  # the same LoRA in kohya/A1111 keys, for ComfyUI and A1111
CARD_FILE = "likeness.json"


@dataclass
class Likeness:
    path: Path
    card: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Likeness:
        path = Path(path)
        card_path = path / CARD_FILE
        if not card_path.is_file():
            raise WorkbenchError(f"{path}: not a finished likeness (no {CARD_FILE}). Train one with "
                                 f"`workbench train SELFIES --out {path}` (it resumes if interrupted).")
        return cls(path=path, card=json.loads(card_path.read_text(encoding="utf-8")))

    @property
    def family(self) -> str:
        return self.card["family"]

    @property
    def base(self) -> str | None:
        return self.card.get("base")

    @property
    def subject(self) -> str:
        """What ``{subject}`` in a pack prompt becomes."""
        return f"{self.card['token']} {self.card['class_word']}"

    @property
    def lora_path(self) -> Path:
        return self.path / LORA_FILE

    @property
    def reference_files(self) -> list[Path]:
        """Selfies the likeness was made from (held-out and training), by their original paths."""
        return [Path(p) for p in self.card.get("held_out_files", []) + self.card.get("training_files", [])]

    def summary(self) -> str:
        c = self.card
        lines = [f"likeness {self.path}", f"  family      {c['family']} ({c['model']['location']})",
                 f"  subject     {self.subject}", f"  chosen step {c['chosen_step']} of {c['config']['steps']} "
                 f"({c['selection_reason']})", f"  recognizer  {c['recognizer']}",
                 f"  held out    {', '.join(Path(p).name for p in c['held_out_files']) or 'none'}",
                 f"  licence     {c['model']['licence']}"]
        for row in c["curve"]:
            lines.append(f"  step {row['step']:>6}  loss {row['loss']:.4f}  faces {row['probe_faces']}/"
                         f"{row['probe_images']}  held-out FaceSim {_fmt(row['heldout_facesim'])}  "
                         f"nearest-train {_fmt(row['nearest_train_facesim'])}")
        if c["model"].get("tiny"):
            lines.append("  NOTE: tiny family — random weights, its images are noise.")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
