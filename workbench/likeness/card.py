"""The Likeness: a directory with the LoRA, its card (``likeness.json``) and validation images."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifacts import CARD_FILE, KOHYA_FILE, LORA_FILE  # noqa: F401 (re-exported)
from ..errors import WorkbenchError

REQUIRED_KEYS = ("family", "token", "class_word", "config", "curve", "chosen_step", "model")


def check_lora_file(path: Path) -> None:
    """The LoRA exists and its safetensors header parses, before anything loads it."""
    if not path.is_file():
        raise WorkbenchError(f"{path}: the likeness has no LoRA file; retrain it (training resumes).")
    raw = path.open("rb").read(8)
    size = int.from_bytes(raw, "little") if len(raw) == 8 else -1
    try:
        if not 0 < size <= min(100 * 2**20, path.stat().st_size - 8):
            raise ValueError("bad header length")
        with path.open("rb") as handle:
            handle.seek(8)
            header = json.loads(handle.read(size))
        if not isinstance(header, dict) or not any(k != "__metadata__" for k in header):
            raise ValueError("no tensors")
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{path}: not a readable LoRA (safetensors) file ({exc}); retrain the likeness.") from exc


@dataclass
class Likeness:
    path: Path
    card: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Likeness:
        path = Path(path).resolve()
        card_path = path / CARD_FILE
        if not card_path.is_file():
            raise WorkbenchError(f"{path}: not a finished likeness (no {CARD_FILE}). Train one with "
                                 f"`workbench train SELFIES --out {path}` (it resumes if interrupted).")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WorkbenchError(f"{card_path}: not a valid likeness card ({type(exc).__name__}); retrain with "
                                 f"`workbench train SELFIES --out {path}`.") from exc
        missing = [key for key in REQUIRED_KEYS if not isinstance(card, dict) or key not in card]
        if missing:
            raise WorkbenchError(f"{card_path}: missing {', '.join(missing)}; this is not a likeness card the "
                                 "workbench wrote. Retrain, or point at the right folder.")
        check_lora_file(path / LORA_FILE)
        return cls(path=path, card=card)

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

    def split(self, group: str) -> list[Path]:
        """The likeness's ``train``, ``validation`` or ``test`` photos (absolute paths). Cards written
        before the three-way split had ``training_files`` and ``held_out_files`` (= validation)."""
        if "splits" in self.card:
            return [Path(p) for p in self.card["splits"][group]]
        legacy = {"train": "training_files", "validation": "held_out_files"}
        return [Path(p) for p in self.card.get(legacy.get(group, ""), [])]

    @property
    def test_shares_shoot_with_train(self) -> bool:
        return bool(self.card.get("test_shares_shoot_with_train", False))

    def timings(self) -> dict[str, float]:
        """Where the training call's time went (its manifest; a resumed run's count from its restart)."""
        from ..store import read_manifest

        manifest = read_manifest(self.path)
        return dict(manifest.timings) if manifest else {}

    def summary(self) -> str:
        c = self.card
        lines = [f"likeness {self.path}", f"  family      {c['family']} ({c['model']['location']})",
                 f"  subject     {self.subject}", f"  chosen step {c['chosen_step']} of {c['config']['steps']} "
                 f"({c['selection_reason']})", f"  recognizer  {c['recognizer']}",
                 f"  validation  {', '.join(p.name for p in self.split('validation')) or 'none'} "
                 "(chooses the checkpoint)",
                 f"  test        {', '.join(p.name for p in self.split('test')) or 'none'} (reported only)"
                 + ("  NOTE: shares a shoot with training photos" if self.test_shares_shoot_with_train else ""),
                 f"  licence     {c['model']['licence']}"]
        if c.get("split_note"):
            lines.append(f"  note        {c['split_note']}")
        if (t := self.timings()).get("likeness_seconds") is not None:
            steps = t["train_seconds"] - t.get("checkpoint_seconds", 0.0)
            compiled = f", compile {t['compile_seconds']:.1f}" if "compile_seconds" in t else ""
            lines.append(f"  time        {t['likeness_seconds']:.1f} s without the model load "
                         f"({t['load_seconds']:.1f} s): check {t['check_seconds']:.1f}, caches "
                         f"{t['cache_seconds']:.1f}, steps {steps:.1f} ({t['seconds_per_step']:.3f} s/step), "
                         f"{t.get('checkpoints', 0):.0f} checkpoints {t.get('checkpoint_seconds', 0.0):.1f}{compiled}")
        if memory := c.get("memory"):
            estimate = (f", estimated peak {memory['estimate_gb']} GB of {memory['free_gb']} GB free"
                        if memory.get("estimate_gb") is not None else "")
            lines.append(f"  memory      tier {memory['memory']}, batch {memory['batch_size']}, "
                         f"{'gradient checkpointing' if memory['gradient_checkpointing'] else 'no checkpointing'}, "
                         f"{memory['optimizer']}{', NF4 base' if memory['quantize_base'] == 'nf4' else ''}, "
                         f"VAE {memory['vae']}{estimate}")
        for row in c["curve"]:
            validation = row.get("validation_facesim", row.get("heldout_facesim"))
            lines.append(f"  step {row['step']:>6}  loss {row['loss']:.4f}  faces {row['probe_faces']}/"
                         f"{row['probe_images']}  validation FaceSim {_fmt(validation)}  "
                         f"nearest-train {_fmt(row['nearest_train_facesim'])}")
        if c["model"].get("tiny"):
            lines.append("  NOTE: tiny family — random weights, its images are noise.")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
