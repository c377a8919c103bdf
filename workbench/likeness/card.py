"""The Likeness: a directory with the LoRA, its card (``likeness.json``) and validation images."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..artifacts import CARD_FILE, KOHYA_FILE, LORA_FILE  # noqa: F401 (re-exported)
from ..errors import ArtifactError, WorkbenchError

REQUIRED_KEYS = ("family", "token", "class_word", "config", "curve", "chosen_step", "model")
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                      "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class CurveRow(BaseModel):
    """One checkpoint of the training curve, as the card keeps it."""

    model_config = ConfigDict(extra="allow")
    step: int
    loss: float
    probe_faces: int
    probe_images: int
    nearest_train_facesim: float | None = None


class ModelSource(BaseModel):
    model_config = ConfigDict(extra="allow")
    location: str
    licence: str


class Card(BaseModel):
    """What a reader of ``likeness.json`` relies on; anything else the card holds is kept as it is."""

    model_config = ConfigDict(extra="allow")
    family: str
    token: str
    class_word: str
    config: dict[str, Any]
    curve: list[CurveRow]
    chosen_step: int
    model: ModelSource
    selection_reason: str = ""
    recognizer: str = ""
    splits: dict[str, list[str]] | None = None


def _lora_error(path: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{path}: {what}; this LoRA cannot be used. Retrain the likeness (`workbench train SELFIES "
                         f"--out {path.parent} --replace`).")


def check_lora_file(path: Path) -> dict[str, Any]:
    """The LoRA exists and is a whole safetensors file: a header that parses, tensors whose shapes and
    offsets fit the file, LoRA metadata that is JSON. Returns the header. Cheap: the tensors are not read."""
    if path.is_symlink() or not path.is_file():
        raise ArtifactError(f"{path}: the likeness has no LoRA file; retrain it (training resumes).")
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
        raise _lora_error(path, f"not a readable safetensors file ({exc})") from None
    data_size, end = path.stat().st_size - 8 - size, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(entry, dict) and entry.get("dtype") in SAFETENSORS_DTYPES
              and isinstance(entry.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
              and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2)
        if ok:
            start, stop = entry["data_offsets"]
            ok = 0 <= start <= stop and stop - start == SAFETENSORS_DTYPES[entry["dtype"]] * math.prod(entry["shape"])
        if not ok:
            raise _lora_error(path, f"tensor {name!r} has a damaged entry")
        end = max(end, stop)
    if end > data_size:
        raise _lora_error(path, f"cut short ({data_size} of {end} bytes of tensors)")
    metadata = header.get("__metadata__") or {}
    for key, value in metadata.items() if isinstance(metadata, dict) else [("__metadata__", metadata)]:
        if key.endswith("adapter_metadata"):
            try:
                if not isinstance(json.loads(value), dict):
                    raise ValueError("not a mapping")
            except (TypeError, ValueError) as exc:
                raise _lora_error(path, f"its metadata {key!r} is not a LoRA config ({exc})") from None
    return header


def check_lora_values(path: Path) -> None:
    """Every weight of the LoRA is finite: NaN or inf weights would render black or noise, silently."""
    import torch
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise _lora_error(path, f"its tensors cannot be read ({type(exc).__name__})") from None
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise _lora_error(path, f"{len(bad)} of its {len(state)} tensors hold NaN or infinite values (first: {bad[0]})")


@dataclass
class Likeness:
    path: Path
    card: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Likeness:
        """A finished likeness, its card and LoRA checked (``ArtifactError`` naming the file otherwise)."""
        path = Path(path).resolve()
        card_path = path / CARD_FILE
        if card_path.is_symlink() or not card_path.is_file():
            raise WorkbenchError(f"{path}: not a finished likeness (no {CARD_FILE}). Train one with "
                                 f"`workbench train SELFIES --out {path}` (it resumes if interrupted).")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ArtifactError(f"{card_path}: not a valid likeness card ({type(exc).__name__}); retrain with "
                                f"`workbench train SELFIES --out {path}`.") from exc
        missing = [key for key in REQUIRED_KEYS if not isinstance(card, dict) or key not in card]
        if missing:
            raise ArtifactError(f"{card_path}: missing {', '.join(missing)}; this is not a likeness card the "
                                "workbench wrote. Retrain, or point at the right folder.")
        try:
            Card.model_validate(card)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ArtifactError(f"{card_path}: field '{'.'.join(map(str, first['loc']))}': {first['msg']}; this card "
                                "was changed after training. Retrain, or restore it.") from None
        check_lora_file(path / LORA_FILE)
        check_lora_values(path / LORA_FILE)
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
            lines.append("  time        " + _time_line(t))
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


def _time_line(t: dict[str, float]) -> str:
    """Where the training call's time went, from whatever the manifest recorded (a run resumed only to
    finish its export has no steps of its own)."""
    seconds = lambda key: f"{t[key]:.1f}" if key in t else "—"  # noqa: E731
    steps = t["train_seconds"] - t.get("checkpoint_seconds", 0.0) if "train_seconds" in t else None
    per_step = f" ({t['seconds_per_step']:.3f} s/step)" if "seconds_per_step" in t else ""
    compiled = f", compile {t['compile_seconds']:.1f}" if "compile_seconds" in t else ""
    return (f"{t['likeness_seconds']:.1f} s without the model load ({seconds('load_seconds')} s): check "
            f"{seconds('check_seconds')}, caches {seconds('cache_seconds')}, steps "
            f"{'—' if steps is None else f'{max(0.0, steps):.1f}'}{per_step}, {t.get('checkpoints', 0):.0f} "
            f"checkpoints {t.get('checkpoint_seconds', 0.0):.1f}{compiled}")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def load_likeness(path: str | os.PathLike) -> Likeness:
    """A finished likeness folder (``likeness.json`` + ``lora.safetensors``), its card and LoRA checked."""
    return Likeness.load(path)
